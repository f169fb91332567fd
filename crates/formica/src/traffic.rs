//! Traffic through the REST API as people make it, for the crash loop and the soak: each
//! client (a `Worker`) acts for a few people of its own (it alone spends their money and types
//! their PIN, so that no two requests check one person's PIN at once) and sends one request
//! at a time: transfers to anyone, top-ups from their card, and escrow trades with anyone as
//! the seller, each trade walked through one of a few plans (pay, ship, confirm; a full
//! refund; a partial refund then confirm; closed unpaid). Every request carries an
//! idempotency key of its own; the crash loop keeps each acknowledged one with its answer,
//! and the one a kill cuts off as in flight, to be sent again.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use formica_core::{Currency, Id, Money};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::client::{Answer, Client};

/// What the traffic needs of the server (`formica serve` options): the simulated bank answers
/// at once, nobody reaches a daily limit, and no unpaid trade closes by itself meanwhile.
pub const SERVER_RULES: &[&str] = &[
    "--bank-delay-ms",
    "20",
    "--unverified-daily-limit",
    "1000000000",
    "--pay-timeout-minutes",
    "1000000",
];

/// People each client acts for.
pub const PEOPLE_PER_CLIENT: usize = 3;

/// Every person's payment PIN.
pub const PIN: &str = "135790";
pub const PASSWORD: &str = "crash-loop-password";
/// Each person's top-up at the start, in fen (10,000.00).
const FIRST_TOP_UP: u64 = 1_000_000;
/// Top-ups later, in fen (1,000.00 to 5,000.00).
const TOP_UP: std::ops::RangeInclusive<u64> = 100_000..=500_000;
/// Transfers, in fen (0.01 to 50.00).
const TRANSFER: std::ops::RangeInclusive<u64> = 1..=5_000;
/// Trade prices, in fen (1.00 to 200.00).
const PRICE: std::ops::RangeInclusive<u64> = 100..=20_000;
/// Trades a client keeps going at once, so that a kill finds some in every state.
const FLOWS_MAX: usize = 4;

/// A person the loop signed up.
#[derive(Clone, Debug)]
pub struct Person {
    pub id: Id,
    pub login: String,
    pub token: String,
    card: String,
}

/// A wallet's balance in CNY, in fen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balance {
    pub available: u64,
    pub held: u64,
    pub incoming: u64,
}

impl Balance {
    /// The CNY balance in an answer of `GET /v1/wallet`.
    pub fn of(wallet: &Value) -> anyhow::Result<Balance> {
        let cny = wallet["balances"]
            .as_array()
            .and_then(|all| all.iter().find(|b| b["currency"] == "CNY"))
            .with_context(|| format!("a CNY wallet: {wallet}"))?;
        let fen = |field: &str| -> anyhow::Result<u64> {
            let amount = cny[field]["amount"].as_str().context("an amount")?;
            Ok(Money::parse(amount, Currency::CNY)
                .map_err(|error| anyhow::anyhow!("{amount}: {error}"))?
                .amount_minor)
        };
        Ok(Balance {
            available: fen("available")?,
            held: fen("held")?,
            incoming: fen("incoming")?,
        })
    }
}

/// What a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    TopUp,
    Transfer,
    Trade(Step),
}

/// A step of an escrow trade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Create,
    Pay,
    Ship,
    Confirm,
    Close,
    /// A refund of all of the price, or of half of it.
    RequestRefund {
        part: bool,
    },
    AgreeRefund,
}

/// The plans a trade follows.
const FINISH: &[Step] = &[Step::Create, Step::Pay, Step::Ship, Step::Confirm];
const REFUND: &[Step] = &[
    Step::Create,
    Step::Pay,
    Step::RequestRefund { part: false },
    Step::AgreeRefund,
];
const PART_REFUND: &[Step] = &[
    Step::Create,
    Step::Pay,
    Step::Ship,
    Step::RequestRefund { part: true },
    Step::AgreeRefund,
    Step::Confirm,
];
const CLOSE: &[Step] = &[Step::Create, Step::Close];

/// A request as sent: sent again, byte for byte, after a kill.
#[derive(Clone, Debug)]
pub struct Request {
    pub kind: Kind,
    pub path: String,
    /// Whose token it carries (an index into the people).
    pub person: usize,
    pub key: String,
    pub body: Value,
    /// The trade plan it belongs to.
    flow: Option<u64>,
}

impl Request {
    /// Sends it with its person's token and its key.
    pub fn send(&self, client: &Client, people: &[Person]) -> anyhow::Result<Answer> {
        client.send(
            "POST",
            &self.path,
            Some(&people[self.person].token),
            Some(&self.key),
            &self.body,
        )
    }

    /// When the server applied it, from its answer (the batch's time, in nanoseconds).
    pub fn applied_at(&self, answer: &Answer) -> Option<u64> {
        let field = match self.kind {
            Kind::TopUp | Kind::Transfer => "created_at",
            Kind::Trade(_) => "updated_at",
        };
        answer.body[field].as_u64()
    }
}

/// An acknowledged request: the server answered it with a 2xx.
#[derive(Clone, Debug)]
pub struct Ack {
    pub request: Request,
    pub answer: Answer,
}

/// One trade being walked through its plan.
#[derive(Clone, Debug)]
struct Flow {
    id: u64,
    plan: &'static [Step],
    next: usize,
    seller: usize,
    buyer: usize,
    price: u64,
    trade: Option<Id>,
}

/// One client: its people, its trades, and every request it sent.
#[derive(Debug)]
pub struct Worker {
    rng: SmallRng,
    index: usize,
    /// The people it acts for (indexes into the people).
    own: Vec<usize>,
    /// Per own person, in fen: what they are sure to hold. Their money leaves only through
    /// this client, so it is what the last check read less what was sent out since.
    floors: Vec<u64>,
    flows: Vec<Flow>,
    sent: u64,
    pub acks: Vec<Ack>,
    /// The request a kill cut off: answered or not, nobody knows.
    pub in_flight: Option<Request>,
    /// What went wrong during the load: an error answer, or no answer before the kill.
    pub problems: Vec<String>,
}

fn yuan(fen: u64) -> Value {
    json!({"amount": Money::new(fen, Currency::CNY).decimal(), "currency": "CNY"})
}

impl Worker {
    /// Client `index` of a loop seeded with `seed`; `setup` gives it its people.
    pub fn new(index: usize, seed: u64) -> Worker {
        Worker {
            rng: SmallRng::seed_from_u64(seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9)),
            index,
            own: Vec::new(),
            floors: Vec::new(),
            flows: Vec::new(),
            sent: 0,
            acks: Vec::new(),
            in_flight: None,
            problems: Vec::new(),
        }
    }

    /// Sends requests until `killed` is set or a request goes unanswered (the kill) or is
    /// refused (a problem: a healthy server accepts all of them).
    pub fn run(&mut self, client: &Client, people: &[Person], killed: &AtomicBool) {
        while !killed.load(Ordering::SeqCst) {
            let request = self.next_request(people);
            match request.send(client, people) {
                Ok(answer) if answer.succeeded() => self.acknowledge(request, answer),
                Ok(answer) => {
                    self.problems.push(format!(
                        "POST {} (key {}) answered {}: {}",
                        request.path, request.key, answer.status, answer.body
                    ));
                    return;
                }
                Err(error) => {
                    if !killed.load(Ordering::SeqCst) {
                        self.problems.push(format!(
                            "POST {} (key {}) got no answer before the kill: {error:#}",
                            request.path, request.key
                        ));
                    }
                    self.in_flight = Some(request);
                    return;
                }
            }
        }
    }

    /// What its people are known to hold now (from a check), in fen.
    pub fn set_floors(&mut self, available: impl Fn(usize) -> u64) {
        for (floor, person) in self.floors.iter_mut().zip(&self.own) {
            *floor = available(*person);
        }
    }

    /// The people it acts for (indexes into the people).
    pub fn own(&self) -> &[usize] {
        &self.own
    }

    /// What one of its people holds now, read while none of its requests is in flight.
    pub fn set_floor(&mut self, person: usize, available: u64) {
        if let Some(own) = self.own.iter().position(|p| *p == person) {
            self.floors[own] = available;
        }
    }

    fn key(&mut self) -> String {
        self.sent += 1;
        format!("c{}-{}", self.index, self.sent)
    }

    /// The next request to send that moves money or a trade.
    pub fn next_request(&mut self, people: &[Person]) -> Request {
        let roll = self.rng.random_range(0..100);
        if roll < 35 {
            return self.transfer(people);
        }
        if roll < 40 {
            let own = self.rng.random_range(0..self.own.len());
            return self.top_up(people, own);
        }
        let start =
            self.flows.is_empty() || (self.flows.len() < FLOWS_MAX && self.rng.random_ratio(1, 3));
        if start {
            self.start_flow(people.len());
        }
        let flow = self.rng.random_range(0..self.flows.len());
        self.step(people, flow)
    }

    fn top_up(&mut self, people: &[Person], own: usize) -> Request {
        let amount = self.rng.random_range(TOP_UP);
        let person = self.own[own];
        Request {
            kind: Kind::TopUp,
            path: "/v1/top-ups".to_owned(),
            person,
            key: self.key(),
            body: json!({"card_id": people[person].card, "amount": yuan(amount), "pin": PIN}),
            flow: None,
        }
    }

    fn transfer(&mut self, people: &[Person]) -> Request {
        let own = self.rng.random_range(0..self.own.len());
        let amount = self.rng.random_range(TRANSFER);
        if self.floors[own] < amount {
            return self.top_up(people, own);
        }
        self.floors[own] -= amount;
        let from = self.own[own];
        let to = loop {
            let to = self.rng.random_range(0..people.len());
            if to != from {
                break to;
            }
        };
        let key = self.key();
        // The key as the note: the books show which request made each transfer.
        Request {
            kind: Kind::Transfer,
            path: "/v1/transfers".to_owned(),
            person: from,
            body: json!({"to": {"user_id": people[to].id}, "amount": yuan(amount),
                         "note": key, "pin": PIN}),
            key,
            flow: None,
        }
    }

    fn start_flow(&mut self, people: usize) {
        let plan = match self.rng.random_range(0..100) {
            0..45 => FINISH,
            45..70 => PART_REFUND,
            70..90 => REFUND,
            _ => CLOSE,
        };
        let buyer = self.own[self.rng.random_range(0..self.own.len())];
        let seller = loop {
            let seller = self.rng.random_range(0..people);
            if seller != buyer {
                break seller;
            }
        };
        self.sent += 1;
        self.flows.push(Flow {
            id: self.sent,
            plan,
            next: 0,
            seller,
            buyer,
            price: self.rng.random_range(PRICE),
            trade: None,
        });
    }

    /// The next step of a trade (a top-up instead, if the buyer might not afford paying).
    fn step(&mut self, people: &[Person], index: usize) -> Request {
        let flow = self.flows[index].clone();
        let step = flow.plan[flow.next];
        let own = self
            .own
            .iter()
            .position(|p| *p == flow.buyer)
            .expect("a client's trades are bought by its own people");
        if step == Step::Pay {
            if self.floors[own] < flow.price {
                return self.top_up(people, own);
            }
            self.floors[own] -= flow.price;
        }
        let trade = |verb: &str| {
            let id = flow.trade.expect("a created trade has an id");
            format!("/v1/trades/{id}/{verb}")
        };
        let (path, person, body) = match step {
            Step::Create => (
                "/v1/trades".to_owned(),
                flow.seller,
                json!({"out_trade_no": format!("c{}-t{}", self.index, flow.id),
                       "subject": "crash loop", "amount": yuan(flow.price),
                       "buyer": {"user_id": people[flow.buyer].id}}),
            ),
            Step::Pay => (trade("pay"), flow.buyer, json!({"pin": PIN})),
            Step::Ship => (
                trade("ship"),
                flow.seller,
                json!({"tracking": format!("SF {}", flow.id)}),
            ),
            Step::Confirm => (trade("confirm"), flow.buyer, json!({"pin": PIN})),
            Step::Close => (trade("close"), flow.seller, json!({})),
            Step::RequestRefund { part } => {
                let amount = if part { flow.price / 2 } else { flow.price };
                (
                    trade("refund-request"),
                    flow.buyer,
                    json!({"amount": yuan(amount), "reason": "crash loop"}),
                )
            }
            Step::AgreeRefund => (trade("refund-request/agree"), flow.seller, json!({})),
        };
        Request {
            kind: Kind::Trade(step),
            path,
            person,
            key: self.key(),
            body,
            flow: Some(flow.id),
        }
    }

    /// Keeps an acknowledged request and moves its trade on to the next step.
    pub fn acknowledge(&mut self, request: Request, answer: Answer) {
        self.advance(&request, &answer);
        self.acks.push(Ack { request, answer });
    }

    /// Moves the trade of an acknowledged request on to its next step.
    pub fn advance(&mut self, request: &Request, answer: &Answer) {
        if let Some(id) = request.flow
            && let Some(index) = self.flows.iter().position(|f| f.id == id)
        {
            let flow = &mut self.flows[index];
            if flow.trade.is_none() {
                match answer.body["id"].as_str().and_then(|id| id.parse().ok()) {
                    Some(trade) => flow.trade = Some(trade),
                    None => self.problems.push(format!(
                        "POST {} answered a trade without an id: {}",
                        request.path, answer.body
                    )),
                }
            }
            flow.next += 1;
            if flow.next == flow.plan.len() {
                self.flows.remove(index);
            }
        }
    }
}

/// Signs up `count` people through the API, each with a PIN, a card and money (top-ups
/// acknowledged and settled), and hands them to `workers` clients in turns. The logins are
/// new on every run, so a loop can run again on the same books.
pub fn setup(client: &Client, count: usize, workers: &mut [Worker]) -> anyhow::Result<Vec<Person>> {
    let run: u32 = rand::random();
    let mut people = Vec::with_capacity(count);
    for n in 0..count {
        let login = format!("loop-{run:08x}-{n}@crash.formica.test");
        let signed_up = client.sign_up(&login, PASSWORD, &format!("person {n}"), PIN)?;
        let (id, token, card) = (signed_up.id, signed_up.token, signed_up.card_id);
        people.push(Person {
            id,
            login,
            token,
            card,
        });
    }
    for (n, person) in people.iter().enumerate() {
        let worker = &mut workers[n % workers.len()];
        worker.own.push(n);
        worker.floors.push(FIRST_TOP_UP);
        let request = Request {
            kind: Kind::TopUp,
            path: "/v1/top-ups".to_owned(),
            person: n,
            key: "setup".to_owned(),
            body: json!({"card_id": person.card, "amount": yuan(FIRST_TOP_UP), "pin": PIN}),
            flow: None,
        };
        let answer = request.send(client, &people)?;
        if answer.status != 202 {
            bail!(
                "the first top-up answered {}: {}",
                answer.status,
                answer.body
            );
        }
        let movement = answer.body["id"].as_str().context("a movement id")?;
        client.wait_settled(&person.token, movement)?;
        worker.acknowledge(request, answer);
    }
    Ok(people)
}
