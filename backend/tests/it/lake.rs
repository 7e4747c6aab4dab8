//! A data directory in an S3 bucket, on a real S3-compatible server
//! (moto's, from PyPI, started by the test): two partition consumers and
//! the Gold role that share nothing but the stream and the bucket, with a
//! crash on each side of the commit point, a claim in the way, and a
//! second copy of a consumer fenced off by the manifest's conditional
//! put. Silver and Gold must equal one aggregator's on a local disk, and
//! `clickstream query` and `examples/analyze.py` read the bucket.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clickstream_backend::clock::FixedClock;
use clickstream_backend::gold::follow::GoldFollower;
use clickstream_backend::gold::GoldConfig;
use clickstream_backend::storage::lake::{self, ClientConfigKey, S3Setting};
use clickstream_backend::storage::{CrashPoint, Manifest, PipelineError, Role};

use crate::conformance::{aggregator, embedded, shop_traffic, silver_ids, NOW};
use crate::support::{assert_same_gold, gold_tables, temp_dir};

const KEY: &str = "test-key";
const SECRET: &str = "test-secret";

/// moto's S3 server on a free port, with a bucket `lake`.
struct S3Server {
    child: Child,
    endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    async fn start() -> Option<S3Server> {
        let Ok(python) = std::env::var("CLICKSTREAM_PYTHON") else {
            println!("skipped: the S3 data directory test (CLICKSTREAM_PYTHON unset; scripts/test.sh sets it and installs moto)");
            return None;
        };
        let moto = Path::new(&python).with_file_name("moto_server");
        if !moto.exists() {
            println!(
                "skipped: the S3 data directory test ({} is missing: scripts/setup.sh installs moto[server])",
                moto.display()
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let server = S3Server { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        // moto takes unsigned requests: a PUT of the bucket creates it.
        let made = reqwest::Client::new().put(format!("{}/lake", server.endpoint)).send().await.unwrap();
        assert!(made.status().is_success(), "creating the bucket: {}", made.status());
        lake::set_overrides(vec![
            (S3Setting::Endpoint, server.endpoint.clone()),
            (S3Setting::AccessKeyId, KEY.into()),
            (S3Setting::SecretAccessKey, SECRET.into()),
            (S3Setting::Region, "us-east-1".into()),
            (S3Setting::Client(ClientConfigKey::AllowHttp), "true".into()),
        ]);
        Some(server)
    }

    /// `clickstream` with the bucket's settings in its environment, as an
    /// operator gives them.
    fn clickstream(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_clickstream"))
            .args(args)
            .envs(self.env())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run clickstream")
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }
}

fn temporary_objects(data: &Path) -> Vec<PathBuf> {
    lake::list(data).unwrap().into_iter().filter(|p| p.to_string_lossy().ends_with(".tmp")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_and_the_gold_role_share_only_the_stream_and_a_bucket() {
    let Some(s3) = S3Server::start().await else { return };
    let subject = embedded(4);
    let stream = subject.open().await;
    let sent = shop_traffic(&*stream).await;

    // The reference: one aggregator of every partition, on a local disk.
    let whole = temp_dir("lake-whole");
    aggregator(stream.clone(), whole.path(), None, None).await.unwrap().drain().await.unwrap();

    let data = PathBuf::from("s3://lake/shop");
    let claim = data.join("_state/claims/partition-1");

    // A claim by another consumer keeps a partition from a second owner;
    // a consumer's own claim (left by a crash) is taken back.
    lake::write(&claim, b"partitions [1, 5]".to_vec()).unwrap();
    let taken = aggregator(stream.clone(), &data, Some(vec![1, 3]), None).await.err().expect("partition 1 is claimed");
    assert!(taken.to_string().contains("partition 1") && taken.to_string().contains("[1, 5]"), "{taken}");
    lake::write(&claim, b"partitions [1, 3]".to_vec()).unwrap();

    // Before the commit point: the first micro-batch's files stay temporary.
    let mut even = aggregator(stream.clone(), &data, Some(vec![0, 2]), Some(CrashPoint::GoldWritten)).await.unwrap();
    assert!(matches!(even.step().await, Err(PipelineError::InjectedCrash)));
    assert!(!temporary_objects(&data).is_empty(), "the crashed batch left its temporary files");
    drop(even);
    // After it: the manifest names files not yet published.
    let mut odd =
        aggregator(stream.clone(), &data, Some(vec![1, 3]), Some(CrashPoint::FirstFilePublished)).await.unwrap();
    assert!(matches!(odd.step().await, Err(PipelineError::InjectedCrash)));
    let committed = Manifest::load_role(&data, &Role::Partitions(vec![1, 3])).unwrap();
    assert_eq!(committed.seq, 1);
    assert!(committed.files.iter().any(|f| !lake::exists(&data.join(&f.path)).unwrap()), "a file is unpublished");
    drop(odd);

    // Restarts: recovery removes the orphans and publishes the committed files.
    let mut even = aggregator(stream.clone(), &data, Some(vec![0, 2]), None).await.unwrap();
    let mut odd = aggregator(stream.clone(), &data, Some(vec![1, 3]), None).await.unwrap();
    assert!(temporary_objects(&data).is_empty(), "{:?}", temporary_objects(&data));
    let third = aggregator(stream.clone(), &data, Some(vec![3]), None).await.err().expect("partition 3 is owned");
    assert!(third.to_string().contains("partition 3"), "{third}");

    // A second copy of a running consumer takes the role over when it
    // starts; the first one's next commit is refused (the manifest is not
    // the one it read), so it stops instead of writing beside the copy.
    assert!(!even.step().await.unwrap().is_empty());
    let copy = aggregator(stream.clone(), &data, Some(vec![0, 2]), None).await.unwrap();
    let fenced = even.step().await.expect_err("the older process's commit is refused");
    assert!(fenced.to_string().contains("another process committed"), "{fenced}");
    std::mem::forget(even); // as if it were killed: its temporary files stay
    let mut even = copy;

    let mut gold = GoldFollower::open(&data, GoldConfig::default(), Arc::new(FixedClock::new(NOW))).unwrap();
    loop {
        let a = even.step().await.unwrap();
        let b = odd.step().await.unwrap();
        gold.step().unwrap();
        if a.is_empty() && b.is_empty() {
            break;
        }
    }
    gold.step().unwrap();

    assert_eq!(silver_ids(&data).len(), sent, "every event in Silver once");
    assert_eq!(silver_ids(&data), silver_ids(whole.path()));
    assert_eq!(Role::consumers(&data), vec![Role::Partitions(vec![0, 2]), Role::Partitions(vec![1, 3])]);
    let reference = gold_tables(whole.path());
    assert!(reference.len() >= 6, "Gold tables written: {}", reference.len());
    assert_same_gold(&gold_tables(&data), &reference, "two consumers and the Gold role on S3");
    drop((even, odd, gold));
    // The fenced process's last temporary files go at the role's next start.
    drop(aggregator(stream.clone(), &data, Some(vec![0, 2]), None).await.unwrap());
    assert!(temporary_objects(&data).is_empty(), "{:?}", temporary_objects(&data));

    // What operators and analysts run, against the bucket.
    let url = data.display().to_string();
    let out =
        s3.clickstream(&["query", "SELECT count(*) AS n FROM silver_events", "--format", "json", "--data-dir", &url]);
    assert!(out.status.success(), "query: {}", String::from_utf8_lossy(&out.stderr));
    let counted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(counted[0]["n"], sent);
    the_analysts_script_reads_the_bucket(&s3, &url, whole.path(), sent);

    // Commands that still need a local data directory, and a bucket that
    // is not there, say so by name.
    let serve = s3.clickstream(&["serve", "--data-dir", &url]);
    assert!(String::from_utf8_lossy(&serve.stderr).contains("needs a local data directory"), "{serve:?}");
    let agg = s3.clickstream(&["aggregate", "--once", "--data-dir", &url]);
    assert!(String::from_utf8_lossy(&agg.stderr).contains("stream = \"fluvio\""), "{agg:?}");
    let missing = s3.clickstream(&["gold", "--once", "--data-dir", "s3://no-such-bucket/x"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot use s3://no-such-bucket/x"), "{missing:?}");
}

/// `examples/analyze.py` with an s3:// URL: the numbers of the local run.
fn the_analysts_script_reads_the_bucket(s3: &S3Server, url: &str, local: &Path, sent: usize) {
    let python = std::env::var("CLICKSTREAM_PYTHON").unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/analyze.py");
    let run = |data: &str| -> serde_json::Value {
        let out = Command::new(&python).arg(&script).arg(data).arg("--json").envs(s3.env()).output().unwrap();
        assert!(out.status.success(), "analyze.py {data}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (remote, disk) = (run(url), run(&local.display().to_string()));
    assert_eq!(remote["events"], sent);
    for key in ["events", "visitors", "sessions", "funnel", "revenue", "top_products", "entry_pages", "top_page_titles"]
    {
        assert_eq!(remote[key], disk[key], "{key} read from the bucket and from the local run");
    }
    match remote["duckdb"].get("skipped") {
        Some(why) => println!("skipped: DuckDB over S3 in analyze.py: {why}"),
        None => assert_eq!(remote["duckdb"], disk["duckdb"]),
    }
}
