//! `formica crash-loop`: the real server under fire. `formica serve` runs as a child process
//! (this binary) on the books given; people are signed up and given money through the REST
//! API; concurrent HTTP clients pay each other and walk escrow trades through their steps,
//! each request with an idempotency key, keeping every answer the server acknowledged; then
//! the server is killed with SIGKILL at a random moment and started again on the same books.
//! After every kill:
//!
//! - `formica admin trial-balance` on the books the kill left must say they balance;
//! - each request the kill cut off is sent again with its key and must be answered 2xx
//!   (with the saved answer if it had been applied, applied once if not), and a few
//!   acknowledged ones are sent again and must be answered exactly as before;
//! - through the API, every acknowledged transfer, top-up and trade must be stored once, as
//!   answered or (a trade) in a state the rules can have moved it to since, nothing else may
//!   be stored, and the wallets with escrow must hold exactly the money put in.
//!
//! Some restarts are killed again while they recover. A seed replays the kill moments and
//! the requests (not the threads' interleaving); it is printed, and a violation ends the loop
//! with the seed and a non-zero exit.

mod check;

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use formica_core::Money;
use formica_store::Location;
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use crate::child::{ServeChild, formica, store_options};
use crate::client::Client;
use crate::location::StoreArgs;
use crate::traffic::{self, Kind, PEOPLE_PER_CLIENT, SERVER_RULES as RULES, Worker};

/// A kill comes this long after the clients start, in milliseconds, drawn uniformly: long
/// enough for every kind of request to be in flight at some kill, short enough for many
/// kills a minute.
const LOAD_MS: RangeInclusive<u64> = 50..=1500;
/// One restart in this many is killed again while it recovers (opens the books, loads them,
/// sends the open top-ups to the bank), up to `RECOVERY_MS_MAX` after it starts.
const RECOVERY_KILL_ONE_IN: u32 = 5;
const RECOVERY_MS_MAX: u64 = 300;
/// Acknowledged requests of each client sent again after each restart.
const RESENT_PER_CLIENT: usize = 2;

/// Options of `formica crash-loop`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The books (a fresh temporary SQLite directory if neither is given).
    #[command(flatten)]
    store: StoreArgs,
    /// SIGKILLs under load.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    kills: u64,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    clients: u64,
    /// Seed of the kill moments and the requests (random unless given; printed, to replay).
    #[arg(long)]
    seed: Option<u64>,
}

/// Counts over the whole loop.
#[derive(Debug, Default)]
struct Totals {
    acknowledged: usize,
    cut_off: usize,
    applied_before: usize,
    resent: usize,
    recovery_kills: u64,
}

/// Runs the loop and prints one line per kill and a summary.
pub fn run(args: Args) -> anyhow::Result<()> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let given = args.store.data_dir.is_some() || args.store.database_url.is_some();
    let temporary = if given {
        None
    } else {
        Some(tempfile::tempdir().context("a temporary directory for the books")?)
    };
    let location = match &temporary {
        Some(dir) => Location::Sqlite(dir.path().to_path_buf()),
        None => args.store.location(),
    };
    let store = match &location {
        Location::Sqlite(_) => "sqlite",
        Location::Postgres(_) => "postgres",
    };
    println!(
        "crash loop on {store}: {} kills, {} clients, seed {seed}",
        args.kills, args.clients
    );
    let result = crash_loop(&args, seed, &location, store);
    if result.is_err()
        && let Some(dir) = temporary
    {
        println!("the books are kept in {}", dir.keep().display());
    }
    result.with_context(|| {
        format!(
            "replay with: formica crash-loop --seed {seed} --kills {} --clients {}",
            args.kills, args.clients
        )
    })
}

fn crash_loop(args: &Args, seed: u64, location: &Location, store: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut rng = SmallRng::seed_from_u64(seed);
    let (mut server, url) = ServeChild::start(location, RULES)?;
    let mut client = Client::new(&url);
    let clients = usize::try_from(args.clients)?;
    let mut workers: Vec<Worker> = (0..clients).map(|n| Worker::new(n, seed)).collect();
    let people = traffic::setup(&client, clients * PEOPLE_PER_CLIENT, &mut workers)
        .context("setting up people with money through the API")?;
    let mut totals = Totals::default();
    let mut books = check::Books::default();
    for kill in 1..=args.kills {
        let load = Duration::from_millis(rng.random_range(LOAD_MS));
        let recovery = rng
            .random_ratio(1, RECOVERY_KILL_ONE_IN)
            .then(|| Duration::from_millis(rng.random_range(0..=RECOVERY_MS_MAX)));
        let acks_before: Vec<usize> = workers.iter().map(|w| w.acks.len()).collect();
        let mut problems = Vec::new();

        let killed = AtomicBool::new(false);
        let killed_at = std::thread::scope(|scope| {
            for worker in &mut workers {
                let (client, people, killed) = (&client, &people, &killed);
                scope.spawn(move || worker.run(client, people, killed));
            }
            std::thread::sleep(load);
            // Set before the kill, so that a client whose request fails knows why.
            killed.store(true, Ordering::SeqCst);
            if let Err(error) = server.kill() {
                problems.push(format!("{error:#}"));
            }
            now_ns()
        });
        problems.extend(trial_balance(location).err());

        let mut note = String::new();
        if let Some(delay) = recovery {
            let mut recovering = ServeChild::spawn(location, RULES)?;
            std::thread::sleep(delay);
            if let Err(error) = recovering.kill() {
                problems.push(format!("while it recovered: {error:#}"));
            }
            problems.extend(trial_balance(location).err());
            totals.recovery_kills += 1;
            note = format!(", killed again {} ms into its restart", delay.as_millis());
        }
        let (next, url) = ServeChild::start(location, RULES).context("restarting")?;
        server = next;
        client = Client::new(&url);

        for worker in &mut workers {
            problems.append(&mut worker.problems);
        }
        let (cut_off, applied_before) =
            resend_cut_off(&mut workers, &client, &people, killed_at, &mut problems);
        let resent = resend_acknowledged(
            &workers,
            &acks_before,
            &mut rng,
            &client,
            &people,
            &mut problems,
        );

        let expected = check::Expected::of(workers.iter().flat_map(|w| &w.acks))?;
        let view = check::read(&client, &people).context("reading the books through the API")?;
        let violations;
        (books, violations) = check::compare(&expected, &view);
        problems.extend(violations);
        for worker in &mut workers {
            worker.set_floors(|person| view.wallets[person].available);
        }

        let round = workers
            .iter()
            .zip(&acks_before)
            .flat_map(|(w, before)| &w.acks[*before..]);
        let (mut transfers, mut top_ups, mut steps) = (0, 0, 0);
        for ack in round {
            match ack.request.kind {
                Kind::Transfer => transfers += 1,
                Kind::TopUp => top_ups += 1,
                Kind::Trade(_) => steps += 1,
            }
        }
        let acknowledged = transfers + top_ups + steps;
        println!(
            "kill {kill:>3}/{}: {:>4} ms under load, {acknowledged} acknowledged ({transfers} \
             transfers, {top_ups} top-ups, {steps} trade steps), {cut_off} cut off \
             ({applied_before} had been applied), {resent} sent again{note}; books: {} \
             transfers, {} trades, {} put in, {} in escrow",
            args.kills,
            load.as_millis(),
            books.transfers,
            books.trades,
            yuan(books.put_in),
            yuan(books.held),
        );
        if !problems.is_empty() {
            for problem in &problems {
                println!("violation: {problem}");
            }
            let stderr = server.stderr();
            if !stderr.is_empty() {
                println!("the restarted server's stderr:\n{stderr}");
            }
            bail!(
                "{} violations after kill {kill} on {store} (seed {seed})",
                problems.len()
            );
        }
        totals.acknowledged += acknowledged;
        totals.cut_off += cut_off;
        totals.applied_before += applied_before;
        totals.resent += resent;
    }
    // A last clean stop: the server finishes its work and checkpoints, and the books balance.
    let stopped = server.stop()?;
    ensure!(
        stopped.success(),
        "formica serve did not stop cleanly: {stopped}"
    );
    if let Err(problem) = trial_balance(location) {
        bail!("after the last, clean stop: {problem}");
    }
    println!(
        "crash loop on {store}: {} kills ({} more while recovering), 0 violations; {} requests \
         acknowledged, {} cut off by a kill ({} of them had been applied before it, the rest \
         were applied when sent again), {} sent again after their answer and answered the \
         same; the books hold {} transfers and {} trades, {} put in and all of it in the \
         wallets; trial balance holds after every kill; {:.1} s",
        args.kills,
        totals.recovery_kills,
        totals.acknowledged,
        totals.cut_off,
        totals.applied_before,
        totals.resent,
        books.transfers,
        books.trades,
        yuan(books.put_in),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Sends each request a kill cut off again, with its key and body: it must be answered 2xx,
/// with the saved answer if it had been applied before the kill (`killed_at`) or applied now
/// if not, and counts as acknowledged from then on. Answers how many were cut off and how
/// many of those had been applied.
fn resend_cut_off(
    workers: &mut [Worker],
    client: &Client,
    people: &[traffic::Person],
    killed_at: u64,
    problems: &mut Vec<String>,
) -> (usize, usize) {
    let (mut cut_off, mut applied_before) = (0, 0);
    for worker in workers {
        let Some(request) = worker.in_flight.take() else {
            continue;
        };
        cut_off += 1;
        match request.send(client, people) {
            Ok(answer) if answer.succeeded() => {
                if request.applied_at(&answer).is_some_and(|at| at < killed_at) {
                    applied_before += 1;
                }
                worker.acknowledge(request, answer);
            }
            Ok(answer) => problems.push(format!(
                "POST {} (key {}), cut off by the kill and sent again with its key, \
                 answered {}: {}",
                request.path, request.key, answer.status, answer.body
            )),
            Err(error) => problems.push(format!(
                "POST {} (key {}) sent again: no answer from the restarted server: {error:#}",
                request.path, request.key
            )),
        }
    }
    (cut_off, applied_before)
}

/// Sends a few requests each client had acknowledged since `acks_before` again: each must
/// get its first answer, status and body, and move nothing (the books' check sees that).
/// Answers how many were sent.
fn resend_acknowledged(
    workers: &[Worker],
    acks_before: &[usize],
    rng: &mut SmallRng,
    client: &Client,
    people: &[traffic::Person],
    problems: &mut Vec<String>,
) -> usize {
    let mut resent = 0;
    for (worker, before) in workers.iter().zip(acks_before) {
        for ack in worker.acks[*before..].choose_multiple(rng, RESENT_PER_CLIENT) {
            resent += 1;
            match ack.request.send(client, people) {
                Ok(answer) if answer == ack.answer => {}
                Ok(answer) => problems.push(format!(
                    "POST {} (key {}), acknowledged before the kill, sent again answered {} \
                     {} instead of {} {}",
                    ack.request.path,
                    ack.request.key,
                    answer.status,
                    answer.body,
                    ack.answer.status,
                    ack.answer.body
                )),
                Err(error) => problems.push(format!(
                    "POST {} (key {}) sent again: no answer: {error:#}",
                    ack.request.path, ack.request.key
                )),
            }
        }
    }
    resent
}

/// `formica admin trial-balance` on the books, as an operator runs it: an error saying why
/// unless it exits 0 and says the balance holds.
fn trial_balance(location: &Location) -> Result<(), String> {
    let output = formica()
        .and_then(|mut command| {
            Ok(command
                .args(["admin", "trial-balance"])
                .args(store_options(location))
                .output()?)
        })
        .map_err(|error| format!("running formica admin trial-balance: {error:#}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() && stdout.contains("trial balance holds") {
        return Ok(());
    }
    Err(format!(
        "formica admin trial-balance failed ({}):\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    ))
}

fn yuan(fen: u64) -> String {
    Money::new(fen, formica_core::Currency::CNY).decimal()
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
