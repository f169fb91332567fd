//! After every kill and restart, the books as the API shows them against what the server
//! acknowledged before: every acknowledged transfer present once and as answered, every
//! acknowledged top-up present once and settled, every acknowledged trade present once in the
//! state answered or one the rules can move it to since, nothing nobody asked for, and the
//! money conserved (the wallets, escrow included, hold exactly what came in from the bank).
//! Reading is the API's; judging is pure, and tested below on books made to be wrong.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use formica_core::products::TransferReceipt;
use formica_core::trade::{Trade, TradeStatus};
use formica_core::wallet::{Movement, MovementStatus};
use formica_core::{Id, Money};
use serde_json::Value;

use crate::client::Client;
use crate::traffic::{Ack, Balance, Kind, Person};

/// How long the simulated bank may take to settle the top-ups left open by a kill (the
/// restarted server sends them again at once; the bank answers in milliseconds).
const BANK_WAIT: Duration = Duration::from_secs(30);

/// Violations listed before the rest are only counted.
const VIOLATIONS_SHOWN: usize = 20;

/// The books as the API shows them to the loop's people.
#[derive(Debug, Default)]
pub struct View {
    /// Per person, in the loop's order.
    pub wallets: Vec<Balance>,
    /// Every transfer, once: as its payer lists it.
    pub transfers: Vec<TransferReceipt>,
    pub movements: Vec<Movement>,
    /// Every trade, once: as its seller lists it.
    pub trades: Vec<Trade>,
}

fn parse<T: serde::de::DeserializeOwned>(value: &Value, what: &str) -> anyhow::Result<T> {
    serde_json::from_value(value.clone()).with_context(|| format!("{what}: {value}"))
}

/// Reads the books through the API, waiting first until the bank has settled every top-up.
pub fn read(client: &Client, people: &[Person]) -> anyhow::Result<View> {
    let started = Instant::now();
    loop {
        let view = read_once(client, people)?;
        let open = view
            .movements
            .iter()
            .filter(|m| m.status == MovementStatus::Pending)
            .count();
        if open == 0 {
            return Ok(view);
        }
        if started.elapsed() > BANK_WAIT {
            bail!("{open} top-ups were still waiting for the bank after {BANK_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_once(client: &Client, people: &[Person]) -> anyhow::Result<View> {
    let mut view = View::default();
    for person in people {
        let token = person.token.as_str();
        let wallet = client.expect(200, "GET", "/v1/wallet", Some(token), None, Value::Null)?;
        view.wallets.push(Balance::of(&wallet)?);
        for item in client.all_pages("/v1/transfers", token)? {
            let receipt: TransferReceipt = parse(&item, "a transfer")?;
            if receipt.from_user_id == person.id {
                view.transfers.push(receipt);
            }
        }
        for item in client.all_pages("/v1/movements", token)? {
            view.movements.push(parse(&item, "a movement")?);
        }
        for item in client.all_pages("/v1/trades?role=seller", token)? {
            view.trades.push(parse(&item, "a trade")?);
        }
    }
    Ok(view)
}

/// What the server acknowledged, as it answered.
#[derive(Debug, Default)]
pub struct Expected {
    /// By key (each transfer's note is its request's key).
    transfers: BTreeMap<String, TransferReceipt>,
    movements: BTreeMap<Id, Movement>,
    /// The last acknowledged state of each trade.
    trades: BTreeMap<Id, Trade>,
}

impl Expected {
    /// From every acknowledged request so far.
    pub fn of<'a>(acks: impl IntoIterator<Item = &'a Ack>) -> anyhow::Result<Expected> {
        let mut expected = Expected::default();
        for ack in acks {
            let body = &ack.answer.body;
            match ack.request.kind {
                Kind::Transfer => {
                    expected
                        .transfers
                        .insert(ack.request.key.clone(), parse(body, "a transfer")?);
                }
                Kind::TopUp => {
                    let movement: Movement = parse(body, "a movement")?;
                    expected.movements.insert(movement.id, movement);
                }
                Kind::Trade(_) => {
                    let trade: Trade = parse(body, "a trade")?;
                    let later = expected
                        .trades
                        .get(&trade.id)
                        .is_none_or(|known| known.updated_at <= trade.updated_at);
                    if later {
                        expected.trades.insert(trade.id, trade);
                    }
                }
            }
        }
        Ok(expected)
    }
}

/// What the books held at a check.
#[derive(Clone, Copy, Debug, Default)]
pub struct Books {
    pub transfers: usize,
    pub trades: usize,
    /// Money in from the bank, in fen.
    pub put_in: u64,
    /// Money in escrow, in fen.
    pub held: u64,
}

/// Judges the books against what was acknowledged: the violations found, each a sentence.
pub fn compare(expected: &Expected, view: &View) -> (Books, Vec<String>) {
    let mut violations = Vec::new();
    check_transfers(expected, view, &mut violations);
    check_movements(expected, view, &mut violations);
    check_trades(expected, view, &mut violations);
    let books = check_money(view, &mut violations);
    if violations.len() > VIOLATIONS_SHOWN {
        let more = violations.len() - VIOLATIONS_SHOWN;
        violations.truncate(VIOLATIONS_SHOWN);
        violations.push(format!("and {more} more violations"));
    }
    (books, violations)
}

fn check_transfers(expected: &Expected, view: &View, violations: &mut Vec<String>) {
    let mut seen: HashMap<&str, Vec<&TransferReceipt>> = HashMap::new();
    for receipt in &view.transfers {
        seen.entry(receipt.note.as_str()).or_default().push(receipt);
    }
    for (key, acknowledged) in &expected.transfers {
        match seen.get(key.as_str()).map(Vec::as_slice) {
            None | Some([]) => violations.push(format!(
                "the acknowledged transfer {} (key {key}) is missing",
                acknowledged.id
            )),
            Some([stored]) if *stored != acknowledged => violations.push(format!(
                "the transfer of key {key} is stored as {stored:?}, not as acknowledged: \
                 {acknowledged:?}"
            )),
            Some([_]) => {}
            Some(many) => violations.push(format!(
                "the transfer of key {key} is stored {} times: {many:?}",
                many.len()
            )),
        }
    }
    for receipt in &view.transfers {
        if !expected.transfers.contains_key(&receipt.note) {
            violations.push(format!(
                "a transfer nobody was told of is stored: {receipt:?}"
            ));
        }
    }
}

fn check_movements(expected: &Expected, view: &View, violations: &mut Vec<String>) {
    let mut seen: HashMap<Id, usize> = HashMap::new();
    for movement in &view.movements {
        *seen.entry(movement.id).or_default() += 1;
        match expected.movements.get(&movement.id) {
            None => violations.push(format!(
                "a top-up nobody was told of is stored: {movement:?}"
            )),
            Some(acknowledged) => {
                if (movement.user_id, movement.amount, movement.card_id)
                    != (
                        acknowledged.user_id,
                        acknowledged.amount,
                        acknowledged.card_id,
                    )
                {
                    violations.push(format!(
                        "top-up {} is stored as {movement:?}, not as acknowledged: \
                         {acknowledged:?}",
                        movement.id
                    ));
                }
                if movement.status != MovementStatus::Succeeded {
                    violations.push(format!(
                        "top-up {} did not succeed: {movement:?}",
                        movement.id
                    ));
                }
            }
        }
    }
    for id in expected.movements.keys() {
        match seen.get(id).copied().unwrap_or(0) {
            1 => {}
            0 => violations.push(format!("the acknowledged top-up {id} is missing")),
            times => violations.push(format!("top-up {id} is listed {times} times")),
        }
    }
}

/// Where the core's rules can move an escrow trade in one step, for a trade in `status`
/// that was shipped or not (a refund request resumes the state it paused, and only shipping
/// ships). Timers move trades along these same steps.
fn steps(status: TradeStatus, shipped: bool) -> Vec<(TradeStatus, bool)> {
    use TradeStatus::*;
    match status {
        WaitBuyerPay => vec![(WaitSellerSend, false), (TradeClosed, false)],
        WaitSellerSend => vec![(WaitBuyerConfirm, true), (RefundRequested, false)],
        WaitBuyerConfirm => vec![(TradeFinished, true), (RefundRequested, true)],
        RefundRequested => {
            let resume = if shipped {
                WaitBuyerConfirm
            } else {
                WaitSellerSend
            };
            vec![
                (resume, shipped),
                (TradeClosed, shipped),
                (Dispute, shipped),
            ]
        }
        Dispute => vec![(TradeClosed, shipped), (TradeFinished, shipped)],
        TradeSuccess | TradeFinished | TradeClosed => Vec::new(),
    }
}

/// Whether the rules can take a trade from one (status, shipped) to the other, in any number
/// of steps (none included).
fn reachable(from: (TradeStatus, bool), to: (TradeStatus, bool)) -> bool {
    let mut seen = HashSet::from([from]);
    let mut queue = VecDeque::from([from]);
    while let Some(at) = queue.pop_front() {
        if at == to {
            return true;
        }
        for next in steps(at.0, at.1) {
            if seen.insert(next) {
                queue.push_back(next);
            }
        }
    }
    false
}

fn check_trades(expected: &Expected, view: &View, violations: &mut Vec<String>) {
    let mut by_id: HashMap<Id, Vec<&Trade>> = HashMap::new();
    let mut numbers: HashMap<(Id, &str), usize> = HashMap::new();
    for trade in &view.trades {
        by_id.entry(trade.id).or_default().push(trade);
        *numbers
            .entry((trade.seller_id, trade.out_trade_no.as_str()))
            .or_default() += 1;
        if !expected.trades.contains_key(&trade.id) {
            violations.push(format!("a trade nobody was told of is stored: {trade:?}"));
        }
    }
    for ((seller, number), times) in numbers {
        if times > 1 {
            violations.push(format!(
                "seller {seller} has {times} trades numbered {number}"
            ));
        }
    }
    for (id, acknowledged) in &expected.trades {
        let stored = match by_id.get(id).map(Vec::as_slice) {
            None | Some([]) => {
                violations.push(format!(
                    "the acknowledged trade {id} ({} {}) is missing",
                    acknowledged.out_trade_no,
                    acknowledged.status.as_str()
                ));
                continue;
            }
            Some([stored]) => *stored,
            Some(many) => {
                violations.push(format!("trade {id} is listed {} times", many.len()));
                continue;
            }
        };
        if let Some(why) = trade_moved_wrongly(acknowledged, stored) {
            violations.push(format!(
                "trade {id} {why}: acknowledged {acknowledged:?}, stored {stored:?}"
            ));
        }
    }
}

/// Why `stored` cannot be `acknowledged` or what the rules made of it since, if so.
fn trade_moved_wrongly(acknowledged: &Trade, stored: &Trade) -> Option<&'static str> {
    let identity = |t: &Trade| {
        (
            t.seller_id,
            t.buyer_id,
            t.out_trade_no.clone(),
            t.amount,
            t.created_at,
        )
    };
    if identity(stored) != identity(acknowledged) {
        return Some("is not the trade acknowledged");
    }
    if stored.updated_at < acknowledged.updated_at {
        return Some("is older than acknowledged");
    }
    if stored.updated_at == acknowledged.updated_at {
        return (stored != acknowledged).then_some("differs from its acknowledged state");
    }
    let state = |t: &Trade| (t.status, t.tracking.is_some());
    if !reachable(state(acknowledged), state(stored)) {
        return Some("went where the rules cannot take it");
    }
    if stored.refunded.amount_minor < acknowledged.refunded.amount_minor {
        return Some("has less refunded than acknowledged");
    }
    None
}

fn check_money(view: &View, violations: &mut Vec<String>) -> Books {
    let put_in: u64 = view
        .movements
        .iter()
        .filter(|m| m.status == MovementStatus::Succeeded)
        .map(|m| m.amount.amount_minor)
        .sum();
    let available: u64 = view.wallets.iter().map(|w| w.available).sum();
    let held: u64 = view.wallets.iter().map(|w| w.held).sum();
    let incoming: u64 = view.wallets.iter().map(|w| w.incoming).sum();
    let escrow: u64 = view.trades.iter().map(|t| t.held().amount_minor).sum();
    let show = |fen: u64| Money::new(fen, formica_core::Currency::CNY).decimal();
    if available + held != put_in {
        violations.push(format!(
            "money is not conserved: the wallets hold {} available and {} in escrow, but {} \
             came in from the bank",
            show(available),
            show(held),
            show(put_in)
        ));
    }
    if held != incoming || held != escrow {
        violations.push(format!(
            "escrow does not add up: buyers have {} held, sellers {} incoming, the trades \
             hold {}",
            show(held),
            show(incoming),
            show(escrow)
        ));
    }
    Books {
        transfers: view.transfers.len(),
        trades: view.trades.len(),
        put_in,
        held,
    }
}

#[cfg(test)]
mod tests {
    use formica_core::Currency;
    use formica_core::trade::TradeStatus::*;

    use super::*;

    fn cny(fen: u64) -> Money {
        Money::new(fen, Currency::CNY)
    }

    fn receipt(id: u64, note: &str) -> TransferReceipt {
        TransferReceipt {
            id: Id(id),
            from_user_id: Id(1),
            to_user_id: Id(2),
            amount: cny(500),
            note: note.to_owned(),
            created_at: 10,
        }
    }

    fn top_up(id: u64, fen: u64) -> Movement {
        serde_json::from_value(serde_json::json!({
            "id": id.to_string(), "user_id": "1", "kind": "top_up",
            "amount": {"amount": cny(fen).decimal(), "currency": "CNY"},
            "card_id": "7", "status": "succeeded", "failure": null, "created_at": 5,
            "settled_at": 6,
        }))
        .expect("a movement")
    }

    fn trade(status: TradeStatus, updated_at: u64) -> Trade {
        serde_json::from_value(serde_json::json!({
            "id": "40", "seller_id": "2", "buyer_id": "1", "out_trade_no": "c0-t1",
            "subject": "crash loop", "amount": {"amount": "3.00", "currency": "CNY"},
            "status": status.as_str(), "refunded": {"amount": "0.00", "currency": "CNY"},
            "tracking": null, "refund_request": null, "close_reason": null, "deadline": null,
            "created_at": 1, "paid_at": null, "updated_at": updated_at,
        }))
        .expect("a trade")
    }

    /// Person 1 topped up 10.00, paid person 2 5.00 and has 3.00 in escrow with them.
    fn books() -> (Expected, View) {
        let mut expected = Expected::default();
        expected
            .transfers
            .insert("c0-1".to_owned(), receipt(30, "c0-1"));
        expected.movements.insert(Id(20), top_up(20, 1000));
        let paid = trade(WaitSellerSend, 3);
        expected.trades.insert(paid.id, paid.clone());
        let view = View {
            wallets: vec![
                Balance {
                    available: 200,
                    held: 300,
                    incoming: 0,
                },
                Balance {
                    available: 500,
                    held: 0,
                    incoming: 300,
                },
            ],
            transfers: vec![receipt(30, "c0-1")],
            movements: vec![top_up(20, 1000)],
            trades: vec![paid],
        };
        (expected, view)
    }

    #[test]
    fn books_as_acknowledged_have_no_violation() {
        let (expected, view) = books();
        let (books, violations) = compare(&expected, &view);
        assert_eq!(violations, Vec::<String>::new());
        assert_eq!((books.put_in, books.held, books.transfers), (1000, 300, 1));
    }

    #[test]
    fn a_lost_transfer_is_a_violation() {
        let (expected, mut view) = books();
        view.transfers.clear();
        // Without the transfer, person 1 still has the 5.00.
        view.wallets[0].available += 500;
        view.wallets[1].available -= 500;
        let (_, violations) = compare(&expected, &view);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].contains("is missing"), "{violations:?}");
    }

    #[test]
    fn a_transfer_applied_twice_is_a_violation() {
        let (expected, mut view) = books();
        view.transfers.push(receipt(31, "c0-1"));
        let (_, violations) = compare(&expected, &view);
        assert!(
            violations.iter().any(|v| v.contains("stored 2 times")),
            "{violations:?}"
        );
    }

    #[test]
    fn money_that_leaks_is_a_violation() {
        let (expected, mut view) = books();
        view.wallets[1].available -= 1;
        let (_, violations) = compare(&expected, &view);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].contains("not conserved"), "{violations:?}");
    }

    #[test]
    fn a_trade_may_move_on_but_never_back_or_sideways() {
        let (expected, mut view) = books();
        let mut shipped = trade(WaitBuyerConfirm, 4);
        shipped.tracking = Some("SF 1".to_owned());
        // Shipped since: no longer held? It is: shipping keeps the money in escrow.
        view.trades = vec![shipped.clone()];
        assert_eq!(compare(&expected, &view).1, Vec::<String>::new());
        // Back to unpaid, later: no rule does that.
        view.trades = vec![trade(WaitBuyerPay, 5)];
        view.wallets[0].held = 0;
        view.wallets[0].available += 300;
        view.wallets[1].incoming = 0;
        let (_, violations) = compare(&expected, &view);
        assert!(
            violations.iter().any(|v| v.contains("cannot take it")),
            "{violations:?}"
        );
        // The acknowledged state with another time: an older or a different trade.
        let (expected, mut view) = books();
        view.trades = vec![trade(WaitSellerSend, 2)];
        let (_, violations) = compare(&expected, &view);
        assert!(
            violations.iter().any(|v| v.contains("older")),
            "{violations:?}"
        );
    }

    #[test]
    fn a_partly_refunded_trade_resumes_only_where_it_paused() {
        assert!(reachable(
            (WaitBuyerConfirm, true),
            (WaitBuyerConfirm, true)
        ));
        assert!(reachable((RefundRequested, true), (WaitBuyerConfirm, true)));
        assert!(reachable((WaitSellerSend, false), (TradeFinished, true)));
        assert!(!reachable(
            (WaitBuyerConfirm, true),
            (WaitSellerSend, false)
        ));
        assert!(!reachable((RefundRequested, true), (WaitSellerSend, true)));
        assert!(!reachable((TradeClosed, false), (WaitBuyerPay, false)));
    }
}
