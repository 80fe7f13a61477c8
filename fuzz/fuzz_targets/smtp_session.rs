//! Fuzzes the inbound SMTP session: any client bytes, no panic, and the session ends.
#![no_main]

use libfuzzer_sys::fuzz_target;
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

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let config = InboundConfig { max_message_size: 4096, ..InboundConfig::default() };
        let settings = Settings { config: &config, bounce_domain: "bounce.test", tls: Tls::Offered };
        let writer = async {
            let _ = client.write_all(data).await;
            let _ = client.shutdown().await;
            // Drain replies so the server never blocks on a full pipe.
            let mut sink = tokio::io::sink();
            let _ = tokio::io::copy(&mut client, &mut sink).await;
        };
        let server_side = async move {
            run(&mut server, &settings, &Discard).await;
            // Closing our end lets the client's drain see the end of the replies.
            drop(server);
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            tokio::join!(writer, server_side)
        })
        .await;
    });
});
