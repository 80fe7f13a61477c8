//! The `mailtrail` binary as an operator uses it: real processes, a real socket, the embedded
//! database on disk (and PostgreSQL where the backend matters).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use common::mailtrail;
use std::time::{Duration, Instant};

use mailtrail_domain::Permission;
use mailtrail_store::{AccountId, EmailId};
use mailtrail_store::{MasterKey, Store};
use serde_json::{Value, json};

fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .expect("mailtrail runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn create_account(env: &[(&str, &str)]) -> (String, String) {
    let output = run(mailtrail(env).args(["account", "create", "Acme", "--json"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let created: Value = serde_json::from_str(&stdout(&output)).unwrap();
    (
        created["id"].as_str().unwrap().to_owned(),
        created["api_key"].as_str().unwrap().to_owned(),
    )
}

/// `mailtrail serve` on a free port; stopped with SIGTERM by [`Server::stop`].
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(env: &[(&str, &str)]) -> Self {
        let (child, base) = common::serve(env);
        Server { child, base }
    }

    /// Sends SIGTERM and returns whether the process exited successfully within 10 s.
    fn stop(mut self) -> bool {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        false
    }
}

async fn serves_the_leads_api_and_stops_cleanly(env: &[(&str, &str)]) {
    let (_, key) = create_account(env);
    let server = Server::start(env);
    let client = reqwest::Client::new();

    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let created = client
        .post(format!("{}/v1/leads", server.base))
        .bearer_auth(&key)
        .json(&json!({"email": "ana@example.com", "first_name": "Ana"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let lead: Value = created.json().await.unwrap();
    let path = format!("/v1/leads/{}", lead["id"].as_str().unwrap());
    let fetched = common::get_json(&server.base, &key, &path).await;
    assert_eq!(fetched["first_name"], "Ana");

    let anonymous = client
        .get(format!("{}/v1/leads/x", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    assert!(server.stop(), "serve exits 0 on SIGTERM");
}

#[tokio::test]
async fn serve_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    serves_the_leads_api_and_stops_cleanly(&[("MAILTRAIL_DATA_DIR", data)]).await;
}

#[tokio::test]
async fn serve_on_postgres() {
    let url = mailtrail_testkit::postgres::fresh_database();
    // Nodes on PostgreSQL may take their master key from the environment, no file needed.
    let key = MasterKey::generate().to_hex();
    serves_the_leads_api_and_stops_cleanly(&[
        ("MAILTRAIL_DATABASE_URL", &url),
        ("MAILTRAIL_SECRET_KEY", &key),
    ])
    .await;
}

#[test]
fn operator_key_and_users() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("MAILTRAIL_DATA_DIR", dir.path().to_str().unwrap())];
    let output = run(mailtrail(&env).args(["operator-key", "--json"]));
    let key: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(key["api_key"].as_str().unwrap().starts_with("mt_"));

    let (account, _) = create_account(&env);
    let with_password = |args: &[&str], password: &str| {
        let mut child = mailtrail(&env)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let ok = with_password(
        &[
            "user",
            "create",
            "ana@example.com",
            "--account",
            &account,
            "--role",
            "admin",
        ],
        "correct horse battery\n",
    );
    assert!(ok.status.success(), "{}", stderr(&ok));

    let short = with_password(
        &[
            "user",
            "create",
            "bo@example.com",
            "--account",
            &account,
            "--role",
            "user",
        ],
        "abc\n",
    );
    assert!(!short.status.success());
    assert!(stderr(&short).contains("at least 8"));

    let operator_with_account = with_password(
        &[
            "user",
            "create",
            "op@example.com",
            "--account",
            &account,
            "--role",
            "operator",
        ],
        "correct horse battery\n",
    );
    assert!(!operator_with_account.status.success());

    let again = with_password(
        &[
            "user",
            "create",
            "ANA@example.com",
            "--account",
            &account,
            "--role",
            "user",
        ],
        "correct horse battery\n",
    );
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
}

fn write_leads(path: &Path, rows: usize, bad_line: Option<usize>) {
    let mut csv = String::from("email,first_name,last_name,permission_to_email,company\n");
    for i in 0..rows {
        // Line numbers count the header as line 1.
        if bad_line == Some(i + 2) {
            csv.push_str("broken-address,Bad,Row,yes,Nowhere\n");
        } else {
            csv.push_str(&format!(
                "lead{i}@example.com,First{i},Last{i},yes,Company {}\n",
                i % 97
            ));
        }
    }
    std::fs::write(path, csv).unwrap();
}

/// The store the binary uses in data directory `dir`, with the key it made there.
async fn open_store(dir: &Path) -> Store {
    let key = MasterKey::in_data_dir(dir).unwrap();
    Store::open_sqlite(dir, key).await.unwrap()
}

async fn lead_count(dir: &Path, account: &str) -> u64 {
    let store = open_store(dir).await;
    let count = store.count_leads(account).await.unwrap();
    store.close().await;
    count
}

#[tokio::test]
async fn importing_a_hundred_thousand_leads_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("MAILTRAIL_DATA_DIR", data.to_str().unwrap())];
    let (account, _) = create_account(&env);

    let bad = dir.path().join("bad.csv");
    write_leads(&bad, 100_000, Some(50_001));
    let output = run(mailtrail(&env).args([
        "lead",
        "import",
        bad.to_str().unwrap(),
        "--account",
        &account,
    ]));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("line 50001"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("nothing imported"));
    assert_eq!(lead_count(&data, &account).await, 0);

    let output = run(mailtrail(&env).args([
        "lead",
        "import",
        bad.to_str().unwrap(),
        "--account",
        &account,
        "--skip-invalid",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("99999 created"),
        "{}",
        stdout(&output)
    );
    assert!(stdout(&output).contains("skipped 1 invalid line(s): 50001"));
    assert_eq!(lead_count(&data, &account).await, 99_999);

    let good = dir.path().join("good.csv");
    write_leads(&good, 100_000, None);
    let started = Instant::now();
    let output = run(mailtrail(&env).args([
        "lead",
        "import",
        good.to_str().unwrap(),
        "--account",
        &account,
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("1 created, 99999 updated"),
        "{}",
        stdout(&output)
    );
    assert_eq!(lead_count(&data, &account).await, 100_000);
    eprintln!(
        "100,000-row re-import took {:?} (debug build)",
        started.elapsed()
    );
}

#[tokio::test]
async fn import_never_turns_permission_from_no_to_yes() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("MAILTRAIL_DATA_DIR", dir.path().to_str().unwrap())];
    let (account, _) = create_account(&env);
    let file = dir.path().join("leads.csv");
    let import = |csv: &str| {
        std::fs::write(&file, csv).unwrap();
        let output = run(mailtrail(&env).args([
            "lead",
            "import",
            file.to_str().unwrap(),
            "--account",
            &account,
        ]));
        assert!(output.status.success(), "{}", stderr(&output));
    };
    import("email,permission_to_email\nana@example.com,no\nbo@example.com,yes\n");
    import("email,permission_to_email\nANA@example.com,yes\nbo@example.com,no\n");

    let store = open_store(dir.path()).await;
    for (address, expected) in [
        ("ana@example.com", Permission::No),
        ("bo@example.com", Permission::No),
    ] {
        let lead = store
            .lead_by_address(&account, &address.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(lead.permission, expected, "{address}");
    }
    store.close().await;
}

#[tokio::test]
async fn check_reports_a_tampered_stage() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("MAILTRAIL_DATA_DIR", dir.path().to_str().unwrap())];
    let (account, _) = create_account(&env);
    let store = open_store(dir.path()).await;
    let submission = mailtrail_store::Submission {
        content: mailtrail_store::Content {
            from: "sales@example.com".into(),
            subject: "Hi".into(),
            text: Some("Hello".into()),
            html: None,
            ..Default::default()
        },
        batch: None,
        send_at_ms: None,
        entries: vec![mailtrail_store::QueueEntry {
            to: "ana@example.com".parse().unwrap(),
            lead_id: None,
            fields: Default::default(),
            dropped: None,
            header_to: None,
        }],
    };
    let ids = store
        .enqueue(&account, &submission, None, |_| String::new())
        .await
        .unwrap();
    let email = store
        .email(&AccountId::from(&account), &EmailId::from(&ids[0]))
        .await
        .unwrap();
    store.close().await;

    let clean = run(mailtrail(&env).arg("check"));
    assert!(clean.status.success());
    assert!(stdout(&clean).contains("checked 1 emails: every stored stage matches"));

    let url = format!("sqlite://{}", dir.path().join("mailtrail.db").display());
    let mut raw = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("UPDATE emails SET stage = 'opened' WHERE id = $1")
        .bind(&email.id)
        .execute(&mut raw)
        .await
        .unwrap();
    let dirty = run(mailtrail(&env).arg("check"));
    assert!(!dirty.status.success());
    assert!(
        stdout(&dirty).contains(&format!(
            "email {}: stored stage opened but its events say sent",
            email.id
        )),
        "{}",
        stdout(&dirty)
    );
}

#[test]
fn a_bad_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailtrail.toml");
    std::fs::write(
        &config,
        "http_listen = \"127.0.0.1:0\"\nsmtp_listn = \"x\"\n",
    )
    .unwrap();
    let output = run(mailtrail(&[]).args(["--config", config.to_str().unwrap(), "check"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("smtp_listn"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn report_prints_the_last_action_table_and_the_batch_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("MAILTRAIL_DATA_DIR", dir.path().to_str().unwrap())];
    let (account, _) = create_account(&env);
    for (to, batch) in [("ana@example.com", "spring"), ("bo@example.com", "summer")] {
        let sent = run(mailtrail(&env).args([
            "send",
            "--account",
            &account,
            "--to",
            to,
            "--from",
            "s@shop.test",
            "--subject",
            "Hi {{email}}",
            "--text",
            "Hello",
            "--batch",
            batch,
        ]));
        assert!(sent.status.success(), "{}", stderr(&sent));
    }

    let table = run(mailtrail(&env).args(["report", "emails", "--account", &account]));
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("recipient") && lines[0].contains("Last Action"),
        "{text}"
    );
    assert!(lines[2].starts_with("bo@example.com") && lines[2].contains("Hi bo@example.com"));
    assert!(
        lines[2].contains("summer") && lines[2].contains("Sent"),
        "{text}"
    );

    let csv = run(mailtrail(&env).args(["report", "emails", "--account", &account, "--csv"]));
    let csv = stdout(&csv);
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with("id,recipient,subject,batch,sent_at,last_action,reason,status"));

    let batches = run(mailtrail(&env).args([
        "report",
        "batches",
        "--account",
        &account,
        "--batches",
        "spring,summer",
    ]));
    let text = stdout(&batches);
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("batch") && first.contains("spring") && first.contains("summer"));
    assert!(
        text.lines()
            .any(|l| l.starts_with("opened_rate") && l.contains("n/a")),
        "{text}"
    );

    let missing = run(mailtrail(&env).args(["report", "batches", "--account", "nope"]));
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("there is no account nope"));
}

#[test]
fn config_check_passes_the_example_and_lists_every_bad_key() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/mailtrail.toml");
    let ok = run(mailtrail(&[])
        .arg("--config")
        .arg(&example)
        .args(["config", "check"]));
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
    assert!(stdout(&ok).contains("configuration OK"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "http_listen = \"nope\"\n[outbound]\nhelo = \"x\"\n[outbound.retry]\nfirst_delay = 5\n",
    )
    .unwrap();
    let checked = run(mailtrail(&[])
        .arg("--config")
        .arg(&bad)
        .args(["config", "check"]));
    assert!(!checked.status.success());
    let text = stdout(&checked);
    for path in [
        "http_listen: ",
        "outbound.helo: ",
        "outbound.retry.first_delay: ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(path)),
            "{path} in {text}"
        );
    }
    assert!(text.contains("3 problem(s)"), "{text}");
}

#[tokio::test]
async fn backup_and_migrate_move_an_installation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("MAILTRAIL_DATA_DIR", data.to_str().unwrap())];
    let (account, _) = create_account(&env);

    let restored = dir.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    let file = restored.join("mailtrail.db");
    let backup = run(mailtrail(&env).arg("backup").arg(&file));
    assert!(backup.status.success(), "{}", stderr(&backup));
    assert!(stdout(&backup).contains("backup written to"));
    let again = run(mailtrail(&env).arg("backup").arg(&file));
    assert!(!again.status.success(), "never overwrites a file");
    // The backup opens with the installation's key.
    let key = MasterKey::in_data_dir(&data).unwrap();
    let store = Store::open_sqlite(&restored, key.clone()).await.unwrap();
    assert!(store.account_exists(&account).await.unwrap());
    store.close().await;

    let url = mailtrail_testkit::postgres::fresh_database();
    let migrated = run(mailtrail(&env).args(["migrate", "--to", &url]));
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    assert!(
        stdout(&migrated).contains("into PostgreSQL"),
        "{}",
        stdout(&migrated)
    );
    let target = Store::open_postgres(&url, 2, key).await.unwrap();
    assert!(target.account_exists(&account).await.unwrap());
    let twice = run(mailtrail(&env).args(["migrate", "--to", &url]));
    assert!(!twice.status.success());
    assert!(stderr(&twice).contains("empty one"), "{}", stderr(&twice));
}

#[test]
fn a_second_service_on_the_same_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("MAILTRAIL_DATA_DIR", dir.path().to_str().unwrap())];
    let first = Server::start(&env);
    let second = run(mailtrail(&env)
        .env("MAILTRAIL_HTTP_LISTEN", "127.0.0.1:0")
        .env("MAILTRAIL_SMTP_LISTEN", "127.0.0.1:0")
        .arg("serve"));
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("another mailtrail serve is using"),
        "{}",
        stderr(&second)
    );
    let (account, _) = create_account(&env);
    assert!(
        !account.is_empty(),
        "other commands still work while it runs"
    );
    assert!(first.stop(), "the first service stops cleanly");
    let again = Server::start(&env);
    assert!(
        again.stop(),
        "the lock is free once the first service stopped"
    );
}

/// `bounce classify` over the shared corpus folder: one line per recipient of every labelled
/// message, in file order whatever core classified it, and a folder walked like its files.
#[test]
fn bounce_classify_prints_every_recipient_of_every_file_in_order() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bounce/tests/corpus/bounces");
    let labels = std::fs::read_to_string(corpus.join("labels.tsv")).expect("the shared corpus");
    let output = run(mailtrail(&[]).args(["bounce", "classify"]).arg(&corpus));
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let keys: Vec<(String, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["file"].as_str().unwrap().to_owned(),
                l["index"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        keys, sorted,
        "lines come in file order, then recipient order"
    );
    for label in labels.lines().skip(1) {
        let mut columns = label.split('\t');
        let key = (
            columns.next().unwrap().to_owned(),
            columns.next().unwrap().parse::<u64>().unwrap(),
        );
        assert!(keys.contains(&key), "no line for {key:?}");
    }
    // Two files named on the command line give exactly their lines of the folder's output.
    let (a, b) = ("arf-01.eml", "lhost-activehunter-02.eml");
    let output = run(mailtrail(&[])
        .args(["bounce", "classify"])
        .arg(corpus.join(a))
        .arg(corpus.join(b)));
    let some: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected: Vec<&Value> = lines
        .iter()
        .filter(|l| l["file"] == a || l["file"] == b)
        .collect();
    assert_eq!(some.iter().collect::<Vec<_>>(), expected);
}
