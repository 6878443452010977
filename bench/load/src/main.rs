//! `bench-load`: the client side of `bench/controller.sh`. It writes to a moor controller
//! group or to an etcd cluster the same way and prints what it measured as one JSON line.
//!
//! ```text
//! bench-load moor --config admin.conf --member ctl-1=127.0.0.1:7001 … MODE
//! bench-load etcd --endpoint etcd-1=https://127.0.0.1:2379 --cacert … MODE
//!
//! MODE  leader              the member that leads now (its name)
//!       seq --count N       N writes one after the other: latency p50/p99
//!       load --writers W    W writers sharing one connection for S seconds: writes/s
//!       read --count N      N reads of one key one after the other, linearizable or
//!                           local (`--local`): where a write's time goes
//!       failover --kill PID SIGKILL to PID, then a write attempt every 100 ms until one
//!                           is acknowledged; also when a survivor names a new leader
//! ```
//!
//! A write is one acknowledged, committed write of a new key with a small value:
//!
//! - moor: `Request::Apply` of one ConfigMap `PREFIX-N` (namespace `default`, one key `v`
//!   holding the value), what `moor configmap create` sends, over `wire::Client` as the CLI
//!   builds it. The controller answers after the Raft commit and apply.
//! - etcd: a v3 `Put` of key `PREFIX-N` over gRPC (`etcd-client`, tonic), answered after
//!   the Raft commit and apply.
//!
//! Both clients hold one connection (moor: one QUIC connection, etcd: one HTTP/2 channel
//! per member) shared by every writer; each write is its own stream. The members the client
//! knows are given in order: the script gives only the leader for `seq`, `load` and `read`,
//! so both measure requests sent straight to the leader, and all three, the leader first,
//! for `failover`.
//!
//! Latencies are kept whole (a sorted `Vec` of microseconds): at most a few hundred
//! thousand samples, exact percentiles, no histogram rounding.

mod etcd;
mod moor;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(name = "bench-load", about = "writes to moor or etcd and times it")]
struct Cli {
    #[command(subcommand)]
    system: System,
}

#[derive(Debug, Subcommand)]
enum System {
    /// The moor controller group.
    Moor {
        #[command(flatten)]
        conn: moor::Connect,
        #[command(subcommand)]
        mode: Mode,
    },
    /// An etcd cluster.
    Etcd {
        #[command(flatten)]
        conn: etcd::Connect,
        #[command(subcommand)]
        mode: Mode,
    },
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Print the name of the member that leads now.
    Leader,
    /// Sequential writes from one writer.
    Seq(SeqArgs),
    /// Concurrent writers for a fixed time.
    Load(LoadArgs),
    /// Sequential reads of one key.
    Read(ReadArgs),
    /// Kill a member and time until a write succeeds again.
    Failover(FailoverArgs),
}

#[derive(Debug, Args)]
struct Common {
    /// Bytes of each value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Key prefix (lowercase letters, digits and dashes: a moor object name).
    #[arg(long, default_value = "k")]
    prefix: String,
}

#[derive(Debug, Args)]
struct SeqArgs {
    #[command(flatten)]
    common: Common,
    /// Timed writes.
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// Untimed writes first (connection set-up, caches).
    #[arg(long, default_value_t = 50)]
    warmup: usize,
}

#[derive(Debug, Args)]
struct LoadArgs {
    #[command(flatten)]
    common: Common,
    /// Concurrent writers.
    #[arg(long, default_value_t = 64)]
    writers: usize,
    /// How long they write.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
}

#[derive(Debug, Args)]
struct ReadArgs {
    /// The key (written first if absent).
    #[arg(long, default_value = "read-0")]
    key: String,
    /// Timed reads.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Untimed reads first.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Read the answering member's own copy (moor `Stale`, etcd serializable) instead of a
    /// linearizable read (moor: a Raft read barrier first; etcd: a ReadIndex round).
    #[arg(long)]
    local: bool,
}

#[derive(Debug, Args)]
struct FailoverArgs {
    #[command(flatten)]
    common: Common,
    /// The process to kill (the leader).
    #[arg(long)]
    kill: i32,
    /// How long one write attempt may take before it is abandoned.
    #[arg(long, default_value_t = 5000)]
    attempt_timeout_ms: u64,
    /// A new attempt starts this often, whether the earlier ones finished or not.
    #[arg(long, default_value_t = 100)]
    attempt_every_ms: u64,
    /// Give up after this long.
    #[arg(long, default_value_t = 60)]
    give_up_secs: u64,
    /// A new client (and connection) for every attempt, as separate CLI calls would,
    /// instead of one long-lived client.
    #[arg(long)]
    fresh_client: bool,
}

/// A connected client of either system.
// A process holds one or a few of these: their size does not matter.
#[allow(clippy::large_enum_variant)]
enum Store {
    Moor(moor::Store),
    Etcd(etcd::Store),
}

impl Store {
    async fn put(&self, key: &str, value: &str) -> anyhow::Result<()> {
        match self {
            Store::Moor(s) => s.put(key, value).await,
            Store::Etcd(s) => s.put(key, value).await,
        }
    }

    async fn get(&self, key: &str, local: bool) -> anyhow::Result<()> {
        match self {
            Store::Moor(s) => s.get(key, local).await,
            Store::Etcd(s) => s.get(key, local).await,
        }
    }

    async fn leader(&self) -> anyhow::Result<String> {
        match self {
            Store::Moor(s) => s.leader().await,
            Store::Etcd(s) => s.leader().await,
        }
    }
}

/// How to make a [`Store`] again (for fresh clients).
#[derive(Clone)]
enum Connect {
    Moor(moor::Connect),
    Etcd(etcd::Connect),
}

impl Connect {
    fn member_names(&self) -> Vec<String> {
        match self {
            Connect::Moor(c) => c.member_names(),
            Connect::Etcd(c) => c.member_names(),
        }
    }

    fn only(&self, name: &str) -> Connect {
        match self {
            Connect::Moor(c) => Connect::Moor(c.only(name)),
            Connect::Etcd(c) => Connect::Etcd(c.only(name)),
        }
    }

    async fn open(&self, call_timeout: Duration) -> anyhow::Result<Store> {
        Ok(match self {
            Connect::Moor(c) => Store::Moor(moor::Store::open(c, call_timeout)?),
            Connect::Etcd(c) => Store::Etcd(etcd::Store::open(c, call_timeout).await?),
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (connect, mode) = match cli.system {
        System::Moor { conn, mode } => (Connect::Moor(conn), mode),
        System::Etcd { conn, mode } => (Connect::Etcd(conn), mode),
    };
    let report = match mode {
        Mode::Leader => {
            let store = connect.open(Duration::from_secs(5)).await?;
            println!("{}", store.leader().await?);
            return Ok(());
        }
        Mode::Seq(args) => seq(&connect, &args).await?,
        Mode::Load(args) => load(&connect, &args).await?,
        Mode::Read(args) => read(&connect, &args).await?,
        Mode::Failover(args) => failover(&connect, &args).await?,
    };
    println!("{report}");
    Ok(())
}

/// A value of `size` bytes that differs per write (so no write is a no-op).
fn value(size: usize, n: usize) -> String {
    let mut v = format!("{n:016x}");
    while v.len() < size {
        v.push('x');
    }
    v.truncate(size);
    v
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// p50, p99, mean and max of `samples` (microseconds), as JSON.
fn latency_summary(samples: &mut [u64]) -> serde_json::Value {
    samples.sort_unstable();
    let pick = |q: f64| -> u64 {
        if samples.is_empty() {
            return 0;
        }
        // Nearest rank: the smallest sample with at least q of all samples at or below it.
        let rank = (q * samples.len() as f64).ceil() as usize;
        samples[rank.clamp(1, samples.len()) - 1]
    };
    let mean = if samples.is_empty() {
        0.0
    } else {
        samples.iter().sum::<u64>() as f64 / samples.len() as f64
    };
    json!({
        "count": samples.len(),
        "p50_us": pick(0.50),
        "p90_us": pick(0.90),
        "p99_us": pick(0.99),
        "max_us": samples.last().copied().unwrap_or(0),
        "mean_us": mean,
    })
}

async fn seq(connect: &Connect, args: &SeqArgs) -> anyhow::Result<serde_json::Value> {
    let store = connect.open(Duration::from_secs(10)).await?;
    let c = &args.common;
    for n in 0..args.warmup {
        store
            .put(&format!("{}-w{n}", c.prefix), &value(c.value_size, n))
            .await
            .with_context(|| format!("warm-up write {n}"))?;
    }
    let mut samples = Vec::with_capacity(args.count);
    let started = Instant::now();
    for n in 0..args.count {
        let key = format!("{}-{n}", c.prefix);
        let v = value(c.value_size, n);
        let t = Instant::now();
        store
            .put(&key, &v)
            .await
            .with_context(|| format!("write {n}"))?;
        samples.push(micros(t.elapsed()));
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(json!({
        "mode": "seq",
        "value_size": c.value_size,
        "elapsed_s": elapsed,
        "writes_per_s": args.count as f64 / elapsed,
        "latency": latency_summary(&mut samples),
    }))
}

async fn load(connect: &Connect, args: &LoadArgs) -> anyhow::Result<serde_json::Value> {
    if args.writers == 0 || args.seconds.is_nan() || args.seconds <= 0.0 {
        bail!("--writers and --seconds must be positive");
    }
    let store = std::sync::Arc::new(connect.open(Duration::from_secs(10)).await?);
    let c = &args.common;
    // Every writer's first write opens its stream before the clock starts.
    for w in 0..args.writers {
        store
            .put(&format!("{}-w{w}", c.prefix), &value(c.value_size, w))
            .await
            .with_context(|| format!("warm-up write of writer {w}"))?;
    }
    let duration = Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..args.writers {
        let store = std::sync::Arc::clone(&store);
        let prefix = format!("{}-{w}", c.prefix);
        let size = c.value_size;
        tasks.spawn(async move {
            let mut samples = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            let mut n = 0usize;
            while Instant::now() < deadline {
                let key = format!("{prefix}-{n}");
                let v = value(size, n);
                n += 1;
                let t = Instant::now();
                match store.put(&key, &v).await {
                    Ok(()) => samples.push(micros(t.elapsed())),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (samples, errors, first_error)
        });
    }
    let mut samples = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let (s, e, f) = joined.map_err(|e| anyhow!("writer task failed: {e}"))?;
        samples.extend(s);
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
    }
    // The last writes started before the deadline and ended after it: count the whole span.
    let elapsed = started.elapsed().as_secs_f64();
    let writes = samples.len();
    Ok(json!({
        "mode": "load",
        "writers": args.writers,
        "value_size": c.value_size,
        "elapsed_s": elapsed,
        "writes": writes,
        "errors": errors,
        "first_error": first_error,
        "writes_per_s": writes as f64 / elapsed,
        "latency": latency_summary(&mut samples),
    }))
}

async fn read(connect: &Connect, args: &ReadArgs) -> anyhow::Result<serde_json::Value> {
    let store = connect.open(Duration::from_secs(10)).await?;
    store
        .put(&args.key, &value(100, 0))
        .await
        .context("write the key to read")?;
    for _ in 0..args.warmup {
        store.get(&args.key, args.local).await?;
    }
    let mut samples = Vec::with_capacity(args.count);
    for n in 0..args.count {
        let t = Instant::now();
        store
            .get(&args.key, args.local)
            .await
            .with_context(|| format!("read {n}"))?;
        samples.push(micros(t.elapsed()));
    }
    Ok(json!({
        "mode": "read",
        "local": args.local,
        "latency": latency_summary(&mut samples),
    }))
}

async fn failover(connect: &Connect, args: &FailoverArgs) -> anyhow::Result<serde_json::Value> {
    let attempt_timeout = Duration::from_millis(args.attempt_timeout_ms);
    let c = &args.common;
    let store = connect.open(attempt_timeout).await?;
    store
        .put(&format!("{}-before", c.prefix), &value(c.value_size, 0))
        .await
        .context("the write before the kill")?;
    // The survivors, each asked on its own connection which member it follows: the
    // group's side of the failover, apart from what the writing client goes through.
    let names = connect.member_names();
    let Some((killed, survivors)) = names.split_first() else {
        bail!("failover needs the members by name, the leader first");
    };
    let mut watchers = Vec::new();
    for name in survivors {
        let s = connect.only(name).open(Duration::from_millis(250)).await?;
        s.leader()
            .await
            .with_context(|| format!("ask {name} for the leader"))?;
        watchers.push(s);
    }
    let killed = killed.clone();
    let started = Instant::now();
    let elected = tokio::spawn(async move {
        loop {
            for s in &watchers {
                if let Ok(Ok(name)) =
                    tokio::time::timeout(Duration::from_millis(250), s.leader()).await
                    && name != killed
                {
                    return Some((started.elapsed(), name));
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    // SAFETY: kill(2) takes plain integers and touches no memory of this process; the
    // PID is the benchmark's own child member process given by the script.
    if unsafe { libc::kill(args.kill, libc::SIGKILL) } != 0 {
        bail!("kill -9 {}: {}", args.kill, std::io::Error::last_os_error());
    }
    // A new attempt every `attempt_every_ms`, each left running up to the attempt timeout:
    // the first to be acknowledged ends the measurement. So a write that blocks while there
    // is no leader (etcd queues it, moor waits for one) does not hide a later one that
    // would succeed, and the result does not depend on the timeout.
    let give_up = Duration::from_secs(args.give_up_secs);
    let shared = std::sync::Arc::new(store);
    let connect = std::sync::Arc::new(connect.clone());
    let mut attempts = 0u64;
    let mut errors: Vec<String> = Vec::new();
    let mut first_error_ms = None;
    let mut tasks = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(args.attempt_every_ms.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if started.elapsed() > give_up {
                    bail!("no write succeeded within {give_up:?} of the kill: {errors:?}");
                }
                attempts += 1;
                let key = format!("{}-after-{attempts}", c.prefix);
                let v = value(c.value_size, attempts as usize);
                let fresh = args.fresh_client;
                let shared = std::sync::Arc::clone(&shared);
                let connect = std::sync::Arc::clone(&connect);
                tasks.spawn(async move {
                    let attempt = async {
                        if fresh {
                            connect.open(attempt_timeout).await?.put(&key, &v).await
                        } else {
                            shared.put(&key, &v).await
                        }
                    };
                    match tokio::time::timeout(attempt_timeout, attempt).await {
                        Ok(r) => r,
                        Err(_) => Err(anyhow!("attempt timed out after {attempt_timeout:?}")),
                    }
                });
            }
            Some(joined) = tasks.join_next() => {
                let outcome = joined.map_err(|e| anyhow!("attempt task failed: {e}")).and_then(|r| r);
                match outcome {
                    Ok(()) => break,
                    Err(e) => {
                        first_error_ms.get_or_insert(started.elapsed().as_secs_f64() * 1e3);
                        let text = format!("{e:#}");
                        if errors.len() < 5 && !errors.contains(&text) {
                            errors.push(text);
                        }
                    }
                }
            }
        }
    }
    let failover = started.elapsed();
    tasks.abort_all();
    let (elected_ms, new_leader) =
        match tokio::time::timeout(Duration::from_secs(10), elected).await {
            Ok(Ok(Some((at, name)))) => (Some(at.as_secs_f64() * 1e3), Some(name)),
            _ => (None, None),
        };
    Ok(json!({
        "mode": "failover",
        "fresh_client": args.fresh_client,
        "failover_ms": failover.as_secs_f64() * 1e3,
        "new_leader_known_ms": elected_ms,
        "new_leader": new_leader,
        "attempts": attempts,
        "first_error_ms": first_error_ms,
        "errors": errors,
    }))
}

/// `NAME=ADDRESS` pairs of the command line.
fn name_and_address(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(n, a)| (n.to_string(), a.to_string()))
        .ok_or_else(|| format!("{s:?}: expected NAME=ADDRESS"))
}

/// Reads a PEM file for etcd's TLS.
fn read_pem(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("read {}", path.display()))
}
