//! Replays the fuzzer's SMTP session corpus (`fuzz/corpus/smtp_session`): every input that
//! once found new behaviour must still end its session without a panic. The fuzzing itself
//! (`cargo +nightly fuzz run smtp_session`) is in the README; CI only replays.

use std::path::Path;
use std::time::Duration;

use mailtrail_inbound::InboundConfig;
use mailtrail_inbound::session::{Settings, Sink, Tls, run};
use tokio::io::AsyncWriteExt;

struct Discard;

impl Sink for Discard {
    type Error = std::convert::Infallible;

    async fn store(&self, _: &str, _: &[String], _: &[u8]) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[tokio::test]
async fn every_fuzz_corpus_input_ends_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/smtp_session");
    let inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(!inputs.is_empty(), "the corpus is empty");
    let config = InboundConfig {
        max_message_size: 4096,
        ..InboundConfig::default()
    };
    for input in &inputs {
        let bytes = std::fs::read(input).unwrap();
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let settings = Settings {
            config: &config,
            bounce_domain: "bounce.test",
            tls: Tls::Offered,
        };
        let writer = async {
            let _ = client.write_all(&bytes).await;
            let _ = client.shutdown().await;
            let _ = tokio::io::copy(&mut client, &mut tokio::io::sink()).await;
        };
        let server_side = async move {
            run(&mut server, &settings, &Discard).await;
            drop(server);
        };
        tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(writer, server_side)
        })
        .await
        .unwrap_or_else(|_| panic!("{} did not end", input.display()));
    }
}
