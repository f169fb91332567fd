//! Webhook delivery: at least once, from the outbox. Every money and trade event is written to
//! the outbox in the same transaction as the change it announces; this worker fans each
//! message out to its person's endpoints and POSTs it, signed, until the endpoint answers 2xx
//! or a day has passed.
//!
//! Signature: `Formica-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//! A receiver recomputes it over the raw body and checks that `t` is recent, which stops
//! replays. Retries back off exponentially from `FIRST_RETRY` and stop after `GIVE_UP_AFTER`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use formica_core::Id;
use formica_store::webhook::{self, Attempt, DueDelivery};
use formica_store::{Location, Store, StoreError};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::Clock;

/// The first retry comes this long after a failed attempt; each next one twice as long.
pub const FIRST_RETRY: Duration = Duration::from_secs(10);

/// A delivery that has not succeeded this long after its message was written is given up.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How long one POST may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the worker looks for work when there was none.
const POLL: Duration = Duration::from_millis(100);

/// Messages fanned out, and deliveries attempted, per round.
const ROUND_MAX: u32 = 100;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "Formica-Signature";

/// The signature header's value for `body` sent at `unix_seconds`.
pub fn signature(secret: &str, unix_seconds: u64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any size");
    mac.update(format!("{unix_seconds}.{body}").as_bytes());
    format!(
        "t={unix_seconds},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The JSON body of a delivery: `{"id":"<id>","topic":<topic>,"created_at":<ns>,"data":<payload>}`.
/// `payload` is spliced in as it is (the outbox holds it as JSON text already), so the body is
/// JSON when the payload is, and the signature covers exactly these bytes.
pub fn body(id: Id, topic: &str, created_at: u64, payload: &str) -> String {
    format!(
        "{{\"id\":\"{id}\",\"topic\":{},\"created_at\":{created_at},\"data\":{payload}}}",
        serde_json::Value::String(topic.to_owned()),
    )
}

/// The running worker; stops when dropped.
#[derive(Debug)]
pub struct WebhookWorker {
    _thread: Poller,
}

/// Deliveries made at once.
const SENDERS: usize = 16;

impl WebhookWorker {
    /// Starts delivering from the store at `location`, with `clock` for due times.
    pub fn start(location: Location, clock: Clock) -> Result<Self, StoreError> {
        let mut store = Store::open(&location)?;
        let mut senders = Senders::start("formica-webhook", SENDERS, clock.clone(), {
            let agent = agent(REQUEST_TIMEOUT);
            move |due: &DueDelivery, now| attempt(&agent, due, now)
        });
        Ok(WebhookWorker {
            _thread: Poller::start("formica-webhooks", move || {
                round(&mut store, &mut senders, &clock)
            }),
        })
    }
}

/// Threads that make deliveries side by side, so that an endpoint that hangs holds up no
/// more than the sender it occupies. A poller hands them jobs by id and records what they
/// finish; a job stays "in flight" until then, so it is not handed twice.
#[derive(Debug)]
pub struct Senders<J> {
    jobs: std::sync::mpsc::Sender<(i64, J)>,
    results: std::sync::mpsc::Receiver<(i64, u64, Attempt)>,
    in_flight: std::collections::HashSet<i64>,
}

impl<J: Send + 'static> Senders<J> {
    /// Starts `count` threads named `name-N`, each running `send(job, now)` on the jobs it
    /// takes. They stop when this is dropped.
    pub fn start(
        name: &str,
        count: usize,
        clock: Clock,
        send: impl Fn(&J, u64) -> Attempt + Send + Sync + 'static,
    ) -> Self {
        let (jobs, work) = std::sync::mpsc::channel::<(i64, J)>();
        let (done, results) = std::sync::mpsc::channel();
        let work = Arc::new(std::sync::Mutex::new(work));
        let send = Arc::new(send);
        for n in 0..count {
            let (work, done, clock, send) = (
                Arc::clone(&work),
                done.clone(),
                clock.clone(),
                Arc::clone(&send),
            );
            std::thread::Builder::new()
                .name(format!("{name}-{n}"))
                .spawn(move || {
                    loop {
                        let job = work.lock().expect("the job queue").recv();
                        // The poller is gone: stop.
                        let Ok((id, job)) = job else { return };
                        let now = clock.now();
                        let attempt = send(&job, now);
                        if done.send((id, now, attempt)).is_err() {
                            return;
                        }
                    }
                })
                .expect("a sender thread can be spawned");
        }
        Senders {
            jobs,
            results,
            in_flight: std::collections::HashSet::new(),
        }
    }

    /// The attempts finished since the last call: (job id, when, how it went).
    pub fn finished(&mut self) -> Vec<(i64, u64, Attempt)> {
        let finished: Vec<_> = self.results.try_iter().collect();
        for (id, _, _) in &finished {
            self.in_flight.remove(id);
        }
        finished
    }

    /// Whether a job with this id is on its way.
    pub fn busy(&self, id: i64) -> bool {
        self.in_flight.contains(&id)
    }

    /// Jobs on their way.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Hands a job to the senders.
    pub fn hand(&mut self, id: i64, job: J) {
        if self.jobs.send((id, job)).is_ok() {
            self.in_flight.insert(id);
        }
    }
}

/// An HTTP client for deliveries: each request bounded by `timeout`, any status an answer to
/// record rather than an error, and no redirects followed.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        // A redirect is an answer, not a new address to call: following one would reach
        // wherever the receiver points, past the checks its URL passed.
        .max_redirects(0)
        .build()
        .into()
}

/// A thread that runs a round of work until dropped: again at once while rounds find work,
/// after a short poll when one found none, after a longer wait when one failed.
#[derive(Debug)]
pub struct Poller {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Poller {
    /// Starts the thread `name` running `round`, which answers how much work it did.
    pub fn start(
        name: &str,
        mut round: impl FnMut() -> Result<usize, StoreError> + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let what = name.to_owned();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    match round() {
                        Ok(0) => std::thread::sleep(POLL),
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(%error, worker = %what, "round failed; will retry");
                            std::thread::sleep(POLL * 10);
                        }
                    }
                }
            })
            .expect("a worker thread can be spawned");
        Poller {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One round: fan out new messages, attempt due deliveries. The amount of work done.
fn round(
    store: &mut Store,
    senders: &mut Senders<DueDelivery>,
    clock: &Clock,
) -> Result<usize, StoreError> {
    let finished = senders.finished();
    if !finished.is_empty() {
        store.write_sql(|sql| {
            for (id, at, attempt) in &finished {
                webhook::record_attempt(sql, Id(*id as u64), *at, attempt)?;
            }
            Ok(())
        })?;
    }
    let now = clock.now();
    let fanned = store.write_sql(|sql| webhook::fan_out(sql, now, ROUND_MAX))?;
    let limit = ROUND_MAX + u32::try_from(senders.in_flight()).unwrap_or(u32::MAX);
    let due = store.read_sql(|sql| webhook::due(sql, now, limit))?;
    let mut handed = 0;
    for delivery in due {
        let id = delivery.delivery.id.0 as i64;
        if !senders.busy(id) {
            senders.hand(id, delivery);
            handed += 1;
        }
    }
    Ok(finished.len() + fanned + handed)
}

fn attempt(agent: &ureq::Agent, due: &DueDelivery, now: u64) -> Attempt {
    let delivery = &due.delivery;
    let body = body(
        delivery.id,
        &delivery.topic,
        delivery.created_at,
        &delivery.payload,
    );
    let unix_seconds = now / 1_000_000_000;
    let sent = agent
        .post(&due.url)
        .header("Content-Type", "application/json")
        .header("Formica-Event", &delivery.topic)
        .header("Formica-Delivery", delivery.id.to_string())
        .header(
            SIGNATURE_HEADER,
            signature(&due.secret, unix_seconds, &body),
        )
        .send(body.as_str());
    let (status, error) = match sent {
        Ok(response) if response.status().is_success() => {
            return Attempt::Delivered {
                status: response.status().as_u16(),
            };
        }
        Ok(response) => (
            Some(response.status().as_u16()),
            format!("the endpoint answered {}", response.status()),
        ),
        Err(error) => (None, error.to_string()),
    };
    Attempt::Failed {
        status,
        error,
        retry_at: retry_at(delivery.created_at, delivery.attempts, now),
    }
}

/// When to try again after attempt number `attempts + 1` failed at `now`, or `None` to give up.
pub fn retry_at(created_at: u64, attempts: i64, now: u64) -> Option<u64> {
    let first = FIRST_RETRY.as_nanos() as u64;
    let shift = u32::try_from(attempts.clamp(0, 40)).unwrap_or(40);
    let delay = first.saturating_mul(1u64 << shift.min(40));
    let next = now.saturating_add(delay);
    let deadline = created_at.saturating_add(GIVE_UP_AFTER.as_nanos() as u64);
    (next <= deadline).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_and_stop_after_a_day() {
        let second = 1_000_000_000u64;
        let start = 1_000 * second;
        assert_eq!(retry_at(start, 0, start), Some(start + 10 * second));
        assert_eq!(retry_at(start, 1, start), Some(start + 20 * second));
        assert_eq!(retry_at(start, 3, start), Some(start + 80 * second));
        let mut now = start;
        let mut attempts = 0;
        while let Some(next) = retry_at(start, attempts, now) {
            now = next;
            attempts += 1;
        }
        assert!(now <= start + 24 * 3600 * second);
        assert!(
            (12..=14).contains(&attempts),
            "{attempts} attempts in a day"
        );
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_and_body() {
        // Known answer computed with Python's hmac module:
        // hmac.new(b"whsec", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert_eq!(
            signature("whsec", 1_700_000_000, "{}"),
            "t=1700000000,v1=7d44587dddbaf4c7f70fef20f48cd594834ffea1641e3ac227b84408298738af"
        );
    }
}
