//! What must hold after every step, whatever failed: the books balance in every currency,
//! every wallet's held money is exactly what its open trades and withdrawals hold, every
//! trade's money is where its state says, the fund's units equal its money and nobody's
//! units are negative, every credit score is within its bounds and adds up, every credit
//! line's account is what it owes, and the store agrees with itself.

use formica_core::fund::{fund_account, issuer_account, units_account};
use formica_core::trade::TradeStatus;
use formica_core::wallet::{MovementKind, wallet_account};
use formica_core::{Core, Currency, ProductsLoaded};
use formica_ledger::PendingStatus;
use formica_store::Store;

/// The invariants of the books and products in memory; the first broken one, described.
pub fn core(core: &Core) -> Result<(), String> {
    core.ledger()
        .verify()
        .map_err(|violation| format!("the books break an invariant: {violation}"))?;
    for (ledger, totals) in core.ledger().totals() {
        if !totals.balanced() {
            return Err(format!("ledger {ledger}: debits do not equal credits"));
        }
    }
    let products = core.export_products();
    held_money(core, &products)?;
    funds(core, &products)?;
    credit(&products)?;
    debts(core, &products)
}

/// Each person's receivable is what their open debts have left to repay; each credit line's
/// account is what the line says is owed, and its principal is within its limit; the
/// platform's lent account is the sum of the receivables and the lines' principal.
fn debts(core: &Core, products: &ProductsLoaded) -> Result<(), String> {
    use formica_core::credit_line::line_account;
    use formica_core::deposit::{credit_funding, owed};
    let mut lent = 0u128;
    for line in &products.credit_lines {
        let account = core
            .ledger()
            .account(line_account(line.person_id, line.limit.currency))
            .map_or(0, |a| a.debits_posted.saturating_sub(a.credits_posted));
        if account != u128::from(line.owed()) {
            return Err(format!(
                "{}'s line account holds {account}, the line owes {}: {line:?}",
                line.person_id,
                line.owed()
            ));
        }
        if line.used() > line.limit.amount_minor {
            return Err(format!(
                "{}'s line is past its limit: {line:?}",
                line.person_id
            ));
        }
        lent += u128::from(line.used());
    }
    for (person, _) in &products.people {
        let outstanding: u64 = products
            .open_debts
            .iter()
            .filter(|d| d.person_id == *person)
            .map(|d| d.outstanding())
            .sum();
        let receivable = owed(core, *person);
        if receivable != u128::from(outstanding) {
            return Err(format!(
                "{person} owes {receivable} on the books, {outstanding} in open debts"
            ));
        }
        lent += receivable;
    }
    let funding = credit_funding(core, Currency::CNY);
    if u128::from(funding.lent.amount_minor) != lent {
        return Err(format!(
            "lent {:?}, receivables and lines' principal {lent}",
            funding.lent
        ));
    }
    Ok(())
}

/// Every score is 350 to 950 and is 350 plus its dimensions' points, each within its max.
fn credit(products: &ProductsLoaded) -> Result<(), String> {
    use formica_core::credit::{SCORE_MAX, SCORE_MIN};
    for record in &products.credit {
        let score = &record.score();
        let sum: u16 = score.dimensions.iter().map(|d| d.points).sum();
        if !(SCORE_MIN..=SCORE_MAX).contains(&score.score) || score.score != SCORE_MIN + sum {
            return Err(format!(
                "{}'s score does not add up: {score:?}",
                record.person_id
            ));
        }
        if let Some(d) = score.dimensions.iter().find(|d| d.points > d.max) {
            return Err(format!("{}'s {d:?} is past its max", record.person_id));
        }
    }
    Ok(())
}

/// Every wallet's pending debits are its open trades' holds (as buyer) and its withdrawals in
/// flight; its pending credits, its open trades' holds (as seller) and its normal fund
/// redemptions not yet paid. A paid trade's hold is pending for what it
/// still holds; an unpaid or settled one holds nothing.
fn held_money(core: &Core, products: &ProductsLoaded) -> Result<(), String> {
    let mut expected: std::collections::BTreeMap<u128, (u128, u128)> = Default::default();
    for (id, _) in &products.people {
        expected.insert(wallet_account(*id, Currency::CNY), (0, 0));
    }
    for trade in &products.open_trades {
        let held = u128::from(trade.held().amount_minor);
        if trade.refunded.amount_minor > trade.amount.amount_minor {
            return Err(format!("trade {} refunded more than its price", trade.id));
        }
        let paid = matches!(
            trade.status,
            TradeStatus::WaitSellerSend
                | TradeStatus::WaitBuyerConfirm
                | TradeStatus::RefundRequested
                | TradeStatus::Dispute
        );
        match (paid, trade.hold, trade.buyer_id) {
            (true, Some(hold), Some(buyer)) => {
                let open = core.ledger().open_pending().find(|t| t.id == hold);
                let status = core.ledger().pending_status(hold);
                match (open, status) {
                    (Some(transfer), Some(PendingStatus::Pending)) if transfer.amount == held => {}
                    other => {
                        return Err(format!(
                            "trade {} is {:?} holding {held} but its hold is {other:?}",
                            trade.id, trade.status
                        ));
                    }
                }
                // The hold is pending from the buyer's wallet to the seller's.
                expected
                    .entry(wallet_account(buyer, trade.amount.currency))
                    .or_default()
                    .0 += held;
                expected
                    .entry(wallet_account(trade.seller_id, trade.amount.currency))
                    .or_default()
                    .1 += held;
            }
            (true, ..) => {
                return Err(format!(
                    "trade {} is {:?} without a hold or a buyer",
                    trade.id, trade.status
                ));
            }
            (false, ..) if trade.escrow && held != 0 => {
                return Err(format!("trade {} holds {held} while unpaid", trade.id));
            }
            (false, ..) => {}
        }
    }
    for movement in &products.open_movements {
        let entry = expected
            .entry(wallet_account(movement.user_id, movement.amount.currency))
            .or_default();
        match movement.kind {
            MovementKind::Withdrawal => entry.0 += u128::from(movement.amount.amount_minor),
            // The bank has not paid in yet: nothing is on the books.
            MovementKind::TopUp => {}
        }
    }
    // A frozen deposit is pending from the person's wallet to the merchant: what is left of it
    // after any part given back.
    for hold in &products.open_holds {
        if hold.status == formica_core::deposit::HoldStatus::Frozen {
            expected
                .entry(wallet_account(hold.person_id, hold.amount.currency))
                .or_default()
                .0 += u128::from(hold.rest());
        }
    }
    // A normal redemption's money is on its way to the wallet until its pay day.
    for redemption in &products.open_redemptions {
        expected
            .entry(wallet_account(
                redemption.holder_id,
                redemption.amount.currency,
            ))
            .or_default()
            .1 += u128::from(redemption.amount.amount_minor);
    }
    for (account, (debits, credits)) in expected {
        let Some(wallet) = core.ledger().account(account) else {
            continue;
        };
        if (wallet.debits_pending, wallet.credits_pending) != (debits, credits) {
            let pending: Vec<_> = core
                .ledger()
                .open_pending()
                .filter(|t| t.debit_account_id == account || t.credit_account_id == account)
                .collect();
            return Err(format!(
                "wallet {account:#x} has {} pending out and {} pending in; its trades, \
                 movements and redemptions say {debits} and {credits}; its open pending \
                 transfers: {pending:?}",
                wallet.debits_pending, wallet.credits_pending
            ));
        }
    }
    Ok(())
}

/// Units outstanding (confirmed or not) equal the fund's money; no holder's units are
/// negative; each holding's units are its account's.
fn funds(core: &Core, products: &ProductsLoaded) -> Result<(), String> {
    let ledger = core.ledger();
    for fund in &products.funds {
        let issuer = ledger
            .account(issuer_account(fund))
            .copied()
            .unwrap_or_default();
        let outstanding = issuer.debits_posted + issuer.debits_pending - issuer.credits_posted;
        let money = ledger
            .account(fund_account(fund.id, fund.currency))
            .map_or(0, |a| a.available());
        if i128::try_from(outstanding).ok() != Some(money) {
            return Err(format!(
                "fund {}: {outstanding} units outstanding but {money} money",
                fund.id
            ));
        }
    }
    for holding in &products.holdings {
        let Some(fund) = products.funds.iter().find(|f| f.id == holding.fund_id) else {
            return Err(format!(
                "a holding of fund {} that is gone",
                holding.fund_id
            ));
        };
        let units = ledger
            .account(units_account(holding.holder_id, fund))
            .copied()
            .unwrap_or_default();
        if units.available() < 0 {
            return Err(format!("holder {} has negative units", holding.holder_id));
        }
        // Exported holdings carry no units (the store keeps them as the books'): memory's.
        let held = core
            .holding(holding.fund_id, holding.holder_id)
            .map_or(0, |h| h.units);
        if u128::from(held) != units.credits_posted + units.credits_pending - units.debits_posted {
            return Err(format!(
                "holder {}'s holding says {} units, the books {:?}",
                holding.holder_id, held, units
            ));
        }
    }
    Ok(())
}

/// The store agrees with itself: every ledger balances, and every account's checkpointed
/// balance is what its transfers add up to.
pub fn store(store: &mut Store) -> Result<(), String> {
    let balance = store
        .trial_balance()
        .map_err(|error| format!("the trial balance could not be read: {error}"))?;
    if balance.holds() {
        Ok(())
    } else {
        Err(format!("the store's trial balance fails: {balance:?}"))
    }
}

/// The products as comparable text: the same state in any order of its collections.
pub fn products_text(core: &Core) -> String {
    let mut p = core.export_products();
    p.people.sort_by_key(|(id, _)| *id);
    p.open_trades.sort_by_key(|t| t.id);
    p.open_movements.sort_by_key(|m| m.id);
    p.merchants.sort_by_key(|m| m.id);
    p.funds.sort_by_key(|f| f.id);
    p.holdings.sort_by_key(|h| (h.fund_id, h.holder_id));
    p.open_subscriptions.sort_by_key(|s| s.id);
    p.open_redemptions.sort_by_key(|r| r.id);
    p.holidays.sort_unstable();
    // Used payment codes are kept while unexpired at the books' clock, which faults move
    // (a retried command's refusal is an event too); whether a code is refused is compared
    // through the answers instead.
    p.codes_used.clear();
    format!("{p:?}")
}
