//! `formica bench soak`: ordinary traffic for a long time, to see whether the server keeps
//! its pace and its memory. `formica serve` runs as a child process (this binary) on a fresh
//! store; a few client threads act for people signed up through the API and send a fixed
//! rate of mixed requests over HTTP: balance reads, bill-list and transfer-list pages
//! (walking back page by page), signing in again, transfers, top-ups and escrow trades
//! through their steps. Every interval (a minute by default) prints the throughput, the p50
//! and p99 latency and the server's resident memory (`VmRSS` of `/proc/PID/status`, read
//! every second: the interval's lowest, median and peak reading); the end prints the verdict
//! on memory: the growth of the lowest reading from the first interval (when the caches have
//! warmed) to the last, against `--memory-growth-max-percent`.
//!
//! The named baseline is the rate asked for: the report gives the rate achieved as a ratio
//! of it (1.00x: the server kept up). The run fails (after its report) if memory grew past
//! the limit, if any request failed, or if the books do not balance afterwards.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::ledger::StoreKind;
use super::payments::place;
use crate::child::ServeChild;
use crate::client::Client;
use crate::traffic::{self, Balance, PASSWORD, PEOPLE_PER_CLIENT, Person, SERVER_RULES, Worker};

/// Failed requests described in the report; the rest are only counted.
const ERRORS_SHOWN: usize = 5;
/// Items per page of the lists read.
const PAGE: u32 = 20;
/// How often the server's resident memory is read. One reading an interval would be noise:
/// until argon2's buffers were pooled (2026-12-03, `api::auth::with_blocks`) each password or
/// PIN check allocated 19 MiB that the allocator kept resident for seconds after, so the
/// resident size moved by tens of MiB with the checks running at once; and allocators still
/// keep freed memory for a while. What the server keeps is what stays resident at the
/// quietest moment: the interval's lowest reading, which the verdict compares.
const RSS_EVERY: Duration = Duration::from_secs(1);

/// Options of `formica bench soak`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `sqlite` or `postgres`.
    #[arg(long, value_enum, default_value = "sqlite")]
    store: StoreKind,
    /// PostgreSQL server URL; the run creates and drops its own database there.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// How long to send traffic.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    minutes: u64,
    /// Seconds per report line (a minute; less for a smoke run).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    interval_seconds: u64,
    /// Requests per second to send, all clients together.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,
    /// Client threads (each acts for people of its own).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    clients: u64,
    /// Most the server's resident memory may grow from the end of the first interval to the
    /// end of the last, in percent.
    #[arg(long, default_value_t = 20.0)]
    memory_growth_max_percent: f64,
    /// Seed of the traffic.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The server's `--transfer-cache-slack` (its default when not given): a small one
    /// sweeps the settled transfers out of memory within minutes, so a short run shows
    /// whether anything else grows.
    #[arg(long)]
    transfer_cache_slack: Option<u64>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

/// What the clients saw during one interval.
#[derive(Debug, Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: u64,
    /// The first few failures, described.
    failures: Vec<String>,
}

/// One interval's line of the report.
#[derive(Debug)]
struct Interval {
    end_seconds: f64,
    requests: usize,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    /// The lowest, the median and the highest of the interval's readings of the server's
    /// resident memory, in KiB (None where Linux's /proc is not).
    low_kib: Option<u64>,
    median_kib: Option<u64>,
    peak_kib: Option<u64>,
    /// Transfers the server's books held in memory at the interval's end.
    cached_transfers: Option<u64>,
}

/// Runs the soak and prints its report.
pub fn run(args: Args) -> anyhow::Result<()> {
    ensure!(
        args.store != StoreKind::Memory,
        "the soak runs a server: sqlite or postgres"
    );
    let place = place(args.store, args.database_url.as_deref())?;
    let store = format!("{:?}", args.store).to_lowercase();
    let clients = usize::try_from(args.clients)?;
    let slack = args.transfer_cache_slack.map(|slack| slack.to_string());
    let mut options = SERVER_RULES.to_vec();
    if let Some(slack) = &slack {
        options.extend(["--transfer-cache-slack", slack.as_str()]);
    }
    let (mut server, url) = ServeChild::start(&place.location, &options)?;
    let client = Client::new(&url);
    let mut workers: Vec<Worker> = (0..clients).map(|n| Worker::new(n, args.seed)).collect();
    let people = traffic::setup(&client, clients * PEOPLE_PER_CLIENT, &mut workers)
        .context("setting up people with money through the API")?;
    let seconds = args.minutes * 60;
    println!(
        "soak on {store}: {} requests/s for {} min from {clients} clients, a line every {} s \
         (server pid {})",
        args.rate,
        args.minutes,
        args.interval_seconds,
        server.pid()
    );

    let bar = super::progress(seconds * args.rate, "requests");
    let tally = Mutex::new(Tally::default());
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut intervals = Vec::new();
    let mut failures = Vec::new();
    std::thread::scope(|scope| {
        for (index, worker) in workers.iter_mut().enumerate() {
            let (client, tally, stop, bar) = (&client, &tally, &stop, &bar);
            let mut people = people.clone();
            let clock = Clock {
                started,
                period: Duration::from_secs_f64(args.clients as f64 / args.rate as f64),
                offset: Duration::from_secs_f64(index as f64 / args.rate as f64),
            };
            let seed = args.seed ^ (index as u64 + 1).wrapping_mul(0x2545_F491);
            scope.spawn(move || {
                let mut sender = Sender {
                    rng: SmallRng::seed_from_u64(seed),
                    worker,
                    people: &mut people,
                    client,
                    cursors: HashMap::new(),
                };
                let mut sent: u32 = 0;
                while !stop.load(Ordering::Relaxed) {
                    clock.wait(sent);
                    sent = sent.saturating_add(1);
                    let at = Instant::now();
                    let outcome = sender.one();
                    let micros = u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let mut tally = tally.lock().unwrap_or_else(|e| e.into_inner());
                    tally.latencies_us.push(micros);
                    if let Err(error) = outcome {
                        tally.errors += 1;
                        if tally.failures.len() < ERRORS_SHOWN {
                            tally.failures.push(format!("{error:#}"));
                        }
                    }
                    bar.inc(1);
                }
            });
        }
        let total = Duration::from_secs(seconds);
        let every = Duration::from_secs(args.interval_seconds);
        let mut end = Duration::ZERO;
        while end < total {
            let begin = end;
            end = (end + every).min(total);
            let mut resident = Vec::new();
            while let Some(left) = end.checked_sub(started.elapsed()).filter(|l| !l.is_zero()) {
                std::thread::sleep(left.min(RSS_EVERY));
                resident.extend(server.resident_kib());
            }
            let taken = std::mem::take(&mut *tally.lock().unwrap_or_else(|e| e.into_inner()));
            let mut interval = interval(taken, end - begin, end, resident, &mut failures);
            interval.cached_transfers = cached_transfers(&client);
            // Printed even when the bar is hidden (standard error not a terminal).
            bar.suspend(|| print_interval(&interval));
            intervals.push(interval);
        }
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    // What came back after the last interval's end (the requests then in flight) is counted
    // in the totals, not in an interval.
    let late = tally.into_inner().unwrap_or_else(|e| e.into_inner());
    let stopped = server.stop()?;
    ensure!(
        stopped.success(),
        "formica serve did not stop cleanly: {stopped}"
    );
    let balance = formica_store::Store::open(&place.location)?.trial_balance()?;
    ensure!(balance.holds(), "the trial balance holds after the soak");

    let requests: usize =
        intervals.iter().map(|i| i.requests).sum::<usize>() + late.latencies_us.len();
    let errors = intervals.iter().map(|i| i.errors).sum::<u64>() + late.errors;
    failures.extend(late.failures);
    let achieved = requests as f64 / elapsed;
    let ratio = achieved / args.rate as f64;
    println!(
        "  rate: {achieved:.1} requests/s achieved of {} asked: {ratio:.2}x; {requests} \
         requests, {errors} failed; trial balance holds",
        args.rate
    );
    let first = intervals.first().and_then(|i| i.low_kib);
    let last = intervals.last().and_then(|i| i.low_kib);
    let growth = first
        .zip(last)
        .map(|(first, last)| (last as f64 - first as f64) * 100.0 / first.max(1) as f64);
    let memory_ok = growth.is_none_or(|g| g <= args.memory_growth_max_percent);
    match (first, last, growth) {
        (Some(first), Some(last), Some(growth)) => println!(
            "  memory (lowest RSS): {} in the first interval, {} in the last: {growth:+.1}% \
             (limit {:+.1}%): {}",
            mib(first),
            mib(last),
            args.memory_growth_max_percent,
            if memory_ok { "steady" } else { "GROWING" }
        ),
        _ => println!("  memory: not measured (no /proc/PID/status here)"),
    }
    for failure in &failures {
        println!("  failed: {failure}");
    }
    if args.json {
        let lines: Vec<Value> = intervals
            .iter()
            .map(|i| {
                json!({
                    "end_seconds": i.end_seconds,
                    "requests": i.requests,
                    "per_second": round2(i.per_second),
                    "p50_ms": round2(i.p50_ms),
                    "p99_ms": round2(i.p99_ms),
                    "errors": i.errors,
                    "rss_low_mib": i.low_kib.map(|k| round2(k as f64 / 1024.0)),
                    "rss_median_mib": i.median_kib.map(|k| round2(k as f64 / 1024.0)),
                    "rss_peak_mib": i.peak_kib.map(|k| round2(k as f64 / 1024.0)),
                    "cached_transfers": i.cached_transfers,
                })
            })
            .collect();
        let report = json!({
            "bench": "soak",
            "store": store,
            "minutes": args.minutes,
            "interval_seconds": args.interval_seconds,
            "clients": clients,
            "rate_target": args.rate,
            "rate_achieved": round2(achieved),
            "baseline": "target rate",
            "ratio": round2(ratio),
            "requests": requests,
            "errors": errors,
            "intervals": lines,
            "rss_low_first_mib": first.map(|k| round2(k as f64 / 1024.0)),
            "rss_low_last_mib": last.map(|k| round2(k as f64 / 1024.0)),
            "rss_growth_percent": growth.map(round2),
            "memory_growth_max_percent": args.memory_growth_max_percent,
            "memory_ok": memory_ok,
        });
        println!("{report}");
    }
    if !memory_ok {
        bail!(
            "the server's memory grew by more than {}%",
            args.memory_growth_max_percent
        );
    }
    if errors > 0 {
        bail!("{errors} requests failed");
    }
    Ok(())
}

/// When a client sends: its n-th request at `started + offset + n * period`, so that the
/// clients together send the rate asked for, evenly spread. A client that falls behind sends
/// at once until it catches up, so that the rate achieved says whether the server kept up.
struct Clock {
    started: Instant,
    period: Duration,
    offset: Duration,
}

impl Clock {
    fn wait(&self, sent: u32) {
        let due = self.started + self.offset + self.period * sent;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
}

/// One client's requests.
struct Sender<'a> {
    rng: SmallRng,
    worker: &'a mut Worker,
    /// The people, with this client's own tokens (it signs them in again now and then).
    people: &'a mut Vec<Person>,
    client: &'a Client,
    /// Per person, where their bill list is being read back to (None: the newest page next).
    cursors: HashMap<usize, String>,
}

impl Sender<'_> {
    /// Sends one request of the mix; an error if it was not answered as it should be.
    fn one(&mut self) -> anyhow::Result<()> {
        let own = self.worker.own();
        let person = own[self.rng.random_range(0..own.len())];
        let token = self.people[person].token.clone();
        let get = |path: &str| {
            self.client
                .expect(200, "GET", path, Some(&token), None, Value::Null)
        };
        match self.rng.random_range(0..100) {
            0..25 => {
                let balance = Balance::of(&get("/v1/wallet")?)?;
                // Its money leaves only through this client, which has nothing in flight.
                self.worker.set_floor(person, balance.available);
            }
            25..40 => {
                let path = match self.cursors.get(&person) {
                    Some(cursor) => format!("/v1/wallet/entries?limit={PAGE}&cursor={cursor}"),
                    None => format!("/v1/wallet/entries?limit={PAGE}"),
                };
                let page = get(&path)?;
                match page["next_cursor"].as_str() {
                    Some(cursor) => self.cursors.insert(person, cursor.to_owned()),
                    None => self.cursors.remove(&person),
                };
            }
            40..45 => {
                get(&format!("/v1/transfers?limit={PAGE}"))?;
            }
            45..50 => {
                let session = self.client.expect(
                    201,
                    "POST",
                    "/v1/sessions",
                    None,
                    None,
                    json!({"login": self.people[person].login, "password": PASSWORD}),
                )?;
                let token = session["token"].as_str().context("a token")?;
                self.people[person].token = token.to_owned();
            }
            _ => {
                let request = self.worker.next_request(self.people);
                let answer = request.send(self.client, self.people)?;
                if !answer.succeeded() {
                    bail!(
                        "POST {} answered {}: {}",
                        request.path,
                        answer.status,
                        answer.body
                    );
                }
                self.worker.advance(&request, &answer);
            }
        }
        Ok(())
    }
}

/// The figures of an interval `length` long that ended `end` into the run, with the readings
/// of the server's resident memory taken during it.
fn interval(
    mut tally: Tally,
    length: Duration,
    end: Duration,
    mut resident_kib: Vec<u64>,
    failures: &mut Vec<String>,
) -> Interval {
    tally.latencies_us.sort_unstable();
    resident_kib.sort_unstable();
    failures.extend(tally.failures);
    Interval {
        end_seconds: end.as_secs_f64(),
        requests: tally.latencies_us.len(),
        per_second: tally.latencies_us.len() as f64 / length.as_secs_f64(),
        p50_ms: super::percentile_ms(&tally.latencies_us, 0.5),
        p99_ms: super::percentile_ms(&tally.latencies_us, 0.99),
        errors: tally.errors,
        low_kib: resident_kib.first().copied(),
        median_kib: resident_kib.get(resident_kib.len() / 2).copied(),
        peak_kib: resident_kib.last().copied(),
        cached_transfers: None,
    }
}

/// The server's `formica_engine_cached_transfers` gauge: what its transfer cache holds,
/// which grows until enough settled transfers gather to be swept.
fn cached_transfers(client: &Client) -> Option<u64> {
    let metrics = client.text("/metrics").ok()?;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("formica_engine_cached_transfers "))
        .and_then(|value| value.trim().parse().ok())
}

fn print_interval(interval: &Interval) {
    let end = interval.end_seconds as u64;
    let memory = match (interval.low_kib, interval.median_kib, interval.peak_kib) {
        (Some(low), Some(median), Some(peak)) => format!(
            "low {}, median {}, peak {}",
            mib(low),
            mib(median),
            mib(peak)
        ),
        _ => "unknown".to_owned(),
    };
    let cached = interval
        .cached_transfers
        .map_or_else(|| "unknown".to_owned(), |n| n.to_string());
    println!(
        "  {:>3}:{:02}  {:>6} requests, {:>7.1}/s, p50 {:>7.1} ms, p99 {:>7.1} ms, {} failed; \
         server RSS {memory}; transfers cached {cached}",
        end / 60,
        end % 60,
        interval.requests,
        interval.per_second,
        interval.p50_ms,
        interval.p99_ms,
        interval.errors,
    );
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
