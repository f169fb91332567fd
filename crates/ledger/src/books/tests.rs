use super::*;
use crate::result::CreateTransferResult as T;
use crate::transfer::NANOS_PER_SECOND;

const CNY: u32 = 156;
const USD: u32 = 840;
const SECOND: u64 = NANOS_PER_SECOND;
const START: u64 = 1_000 * SECOND;

/// Account ids of the fixture.
const OPERATOR: u128 = 1;
const WALLET: u128 = 2;
const CREDIT_LINE: u128 = 3;
const DOLLARS: u128 = 4;
const SHOP: u128 = 5;
const EMPTY_WALLET: u128 = 6;

/// Transfer ids of the fixture.
const FUNDED: u128 = 100;
const HOLD: u128 = 101;
const POSTED_HOLD: u128 = 102;
const VOIDED_HOLD: u128 = 103;
const SHORT_HOLD: u128 = 104;
const NEW: u128 = 1_000;

fn wallet(id: u128) -> Account {
    Account::new(id, CNY, 1).with_flags(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
}

fn pending(id: u128, debit: u128, credit: u128, amount: u128) -> Transfer {
    Transfer::new(id, debit, credit, amount, CNY, 1).with_flags(TransferFlags::PENDING)
}

/// A small world: a wallet holding 1,000 with holds in every state, and the accounts the
/// error cases need.
fn fixture() -> Ledger {
    let mut ledger = Ledger::new();
    let accounts = [
        Account::new(OPERATOR, CNY, 9),
        wallet(WALLET),
        Account::new(CREDIT_LINE, CNY, 2).with_flags(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS),
        Account::new(DOLLARS, USD, 9),
        Account::new(SHOP, CNY, 3),
        wallet(EMPTY_WALLET),
    ];
    assert!(
        ledger
            .create_accounts(START, &accounts)
            .iter()
            .all(|r| r.is_ok())
    );
    let transfers = [
        Transfer::new(FUNDED, OPERATOR, WALLET, 1_000, CNY, 1),
        pending(HOLD, WALLET, SHOP, 100),
        pending(POSTED_HOLD, WALLET, SHOP, 50),
        pending(VOIDED_HOLD, WALLET, SHOP, 10),
        pending(SHORT_HOLD, WALLET, SHOP, 5).with_timeout(1),
        Transfer::post(POSTED_HOLD + 10, POSTED_HOLD, AMOUNT_MAX),
        Transfer::void(VOIDED_HOLD + 10, VOIDED_HOLD),
    ];
    let results = ledger.create_transfers(START, &transfers);
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    ledger.verify().expect("fixture is consistent");
    ledger
}

fn apply_one(ledger: &mut Ledger, now: u64, transfer: Transfer) -> CreateTransferResult {
    let results = ledger.create_transfers(now, &[transfer]);
    assert_eq!(results.len(), 1);
    results[0]
}

#[test]
fn every_transfer_result_code_is_reported_and_failures_change_nothing() {
    let plain = |debit, credit, amount| Transfer::new(NEW, debit, credit, amount, CNY, 1);
    let existing = Transfer::new(FUNDED, OPERATOR, WALLET, 1_000, CNY, 1);
    let post = |amount| Transfer::post(NEW, HOLD, amount);
    let huge = u128::MAX - 10;
    let rows: Vec<(&str, Transfer, CreateTransferResult)> = vec![
        ("single phase", plain(WALLET, SHOP, 10), T::Ok),
        ("whole balance", plain(WALLET, SHOP, 845), T::Ok),
        ("pending", pending(NEW, WALLET, SHOP, 10), T::Ok),
        ("post all", post(AMOUNT_MAX), T::Ok),
        ("post part", post(40), T::Ok),
        ("void", Transfer::void(NEW, HOLD), T::Ok),
        (
            "void naming the amount",
            Transfer {
                amount: 100,
                ..Transfer::void(NEW, HOLD)
            },
            T::Ok,
        ),
        (
            "timestamp set",
            Transfer {
                timestamp: 1,
                ..plain(WALLET, SHOP, 1)
            },
            T::TimestampMustBeZero,
        ),
        (
            "unknown flag",
            Transfer {
                flags: TransferFlags::from_bits_retain(1 << 15),
                ..plain(WALLET, SHOP, 1)
            },
            T::ReservedFlag,
        ),
        (
            "id zero",
            Transfer {
                id: 0,
                ..plain(WALLET, SHOP, 1)
            },
            T::IdMustNotBeZero,
        ),
        (
            "id max",
            Transfer {
                id: u128::MAX,
                ..plain(WALLET, SHOP, 1)
            },
            T::IdMustNotBeIntMax,
        ),
        ("same again", existing, T::Exists),
        (
            "other flags",
            existing.with_flags(TransferFlags::PENDING),
            T::ExistsWithDifferentFlags,
        ),
        (
            "other pending id",
            Transfer {
                pending_id: 7,
                ..existing
            },
            T::ExistsWithDifferentPendingId,
        ),
        (
            "other timeout",
            Transfer {
                timeout: 7,
                ..existing
            },
            T::ExistsWithDifferentTimeout,
        ),
        (
            "other debit",
            Transfer {
                debit_account_id: SHOP,
                ..existing
            },
            T::ExistsWithDifferentDebitAccountId,
        ),
        (
            "other credit",
            Transfer {
                credit_account_id: SHOP,
                ..existing
            },
            T::ExistsWithDifferentCreditAccountId,
        ),
        (
            "other amount",
            Transfer {
                amount: 999,
                ..existing
            },
            T::ExistsWithDifferentAmount,
        ),
        (
            "other data 128",
            Transfer {
                user_data_128: 1,
                ..existing
            },
            T::ExistsWithDifferentUserData128,
        ),
        (
            "other data 64",
            Transfer {
                user_data_64: 1,
                ..existing
            },
            T::ExistsWithDifferentUserData64,
        ),
        (
            "other data 32",
            Transfer {
                user_data_32: 1,
                ..existing
            },
            T::ExistsWithDifferentUserData32,
        ),
        (
            "other ledger",
            Transfer {
                ledger: USD,
                ..existing
            },
            T::ExistsWithDifferentLedger,
        ),
        (
            "other code",
            Transfer {
                code: 2,
                ..existing
            },
            T::ExistsWithDifferentCode,
        ),
        (
            "post and void",
            post(1).with_flags(
                TransferFlags::POST_PENDING_TRANSFER | TransferFlags::VOID_PENDING_TRANSFER,
            ),
            T::FlagsAreMutuallyExclusive,
        ),
        (
            "post and pending",
            post(1).with_flags(TransferFlags::POST_PENDING_TRANSFER | TransferFlags::PENDING),
            T::FlagsAreMutuallyExclusive,
        ),
        (
            "debit zero",
            plain(0, SHOP, 1),
            T::DebitAccountIdMustNotBeZero,
        ),
        (
            "debit max",
            plain(u128::MAX, SHOP, 1),
            T::DebitAccountIdMustNotBeIntMax,
        ),
        (
            "credit zero",
            plain(WALLET, 0, 1),
            T::CreditAccountIdMustNotBeZero,
        ),
        (
            "credit max",
            plain(WALLET, u128::MAX, 1),
            T::CreditAccountIdMustNotBeIntMax,
        ),
        (
            "to itself",
            plain(WALLET, WALLET, 1),
            T::AccountsMustBeDifferent,
        ),
        (
            "pending id on plain",
            Transfer {
                pending_id: HOLD,
                ..plain(WALLET, SHOP, 1)
            },
            T::PendingIdMustBeZero,
        ),
        (
            "post without pending id",
            Transfer::post(NEW, 0, 1),
            T::PendingIdMustNotBeZero,
        ),
        (
            "post pending id max",
            Transfer::post(NEW, u128::MAX, 1),
            T::PendingIdMustNotBeIntMax,
        ),
        (
            "post itself",
            Transfer::post(NEW, NEW, 1),
            T::PendingIdMustBeDifferent,
        ),
        (
            "timeout on plain",
            plain(WALLET, SHOP, 1).with_timeout(5),
            T::TimeoutReservedForPendingTransfer,
        ),
        (
            "timeout on post",
            post(1).with_timeout(5),
            T::TimeoutReservedForPendingTransfer,
        ),
        (
            "closing not pending",
            plain(WALLET, SHOP, 1).with_flags(TransferFlags::CLOSING_DEBIT),
            T::ClosingTransferMustBePending,
        ),
        (
            "zero amount",
            plain(WALLET, SHOP, 0),
            T::AmountMustNotBeZero,
        ),
        ("post zero", post(0), T::AmountMustNotBeZero),
        (
            "ledger zero",
            Transfer {
                ledger: 0,
                ..plain(WALLET, SHOP, 1)
            },
            T::LedgerMustNotBeZero,
        ),
        (
            "code zero",
            Transfer {
                code: 0,
                ..plain(WALLET, SHOP, 1)
            },
            T::CodeMustNotBeZero,
        ),
        (
            "no debit account",
            plain(77, SHOP, 1),
            T::DebitAccountNotFound,
        ),
        (
            "no credit account",
            plain(WALLET, 77, 1),
            T::CreditAccountNotFound,
        ),
        (
            "across currencies",
            plain(DOLLARS, SHOP, 1),
            T::AccountsMustHaveTheSameLedger,
        ),
        (
            "wrong ledger",
            Transfer {
                ledger: USD,
                ..plain(WALLET, SHOP, 1)
            },
            T::TransferMustHaveTheSameLedgerAsAccounts,
        ),
        (
            "no pending transfer",
            Transfer::post(NEW, 555, 1),
            T::PendingTransferNotFound,
        ),
        (
            "settle a plain transfer",
            Transfer::post(NEW, FUNDED, 1),
            T::PendingTransferNotPending,
        ),
        (
            "post other debit",
            Transfer {
                debit_account_id: OPERATOR,
                ..post(1)
            },
            T::PendingTransferHasDifferentDebitAccountId,
        ),
        (
            "post other credit",
            Transfer {
                credit_account_id: OPERATOR,
                ..post(1)
            },
            T::PendingTransferHasDifferentCreditAccountId,
        ),
        (
            "post other ledger",
            Transfer {
                ledger: USD,
                ..post(1)
            },
            T::PendingTransferHasDifferentLedger,
        ),
        (
            "post other code",
            Transfer { code: 3, ..post(1) },
            T::PendingTransferHasDifferentCode,
        ),
        ("post too much", post(101), T::ExceedsPendingTransferAmount),
        (
            "void other amount",
            Transfer {
                amount: 3,
                ..Transfer::void(NEW, HOLD)
            },
            T::PendingTransferHasDifferentAmount,
        ),
        (
            "post a posted hold",
            Transfer::post(NEW, POSTED_HOLD, 1),
            T::PendingTransferAlreadyPosted,
        ),
        (
            "void a voided hold",
            Transfer::void(NEW, VOIDED_HOLD),
            T::PendingTransferAlreadyVoided,
        ),
        (
            "overflow pending debits",
            pending(NEW, WALLET, SHOP, u128::MAX),
            T::OverflowsDebitsPending,
        ),
        (
            "overflow posted debits",
            plain(OPERATOR, SHOP, u128::MAX),
            T::OverflowsDebitsPosted,
        ),
        (
            "overflow posted credits",
            plain(EMPTY_WALLET, WALLET, huge),
            T::OverflowsCreditsPosted,
        ),
        (
            "longest timeout",
            pending(NEW, WALLET, SHOP, 1).with_timeout(u32::MAX),
            T::Ok,
        ),
        ("overspend", plain(WALLET, SHOP, 846), T::ExceedsCredits),
        (
            "overspend with a hold",
            pending(NEW, WALLET, SHOP, 846),
            T::ExceedsCredits,
        ),
        (
            "repay beyond drawn",
            plain(OPERATOR, CREDIT_LINE, 1),
            T::ExceedsDebits,
        ),
        (
            "balancing takes what there is",
            plain(EMPTY_WALLET, SHOP, 1).with_flags(TransferFlags::BALANCING_DEBIT),
            T::Ok,
        ),
    ];
    let covered: std::collections::HashSet<_> = rows.iter().map(|row| row.2).collect();
    let elsewhere = [
        T::LinkedEventFailed,
        T::LinkedEventChainOpen,
        T::OverflowsCreditsPending,
        T::OverflowsDebits,
        T::OverflowsCredits,
        T::OverflowsTimeout,
        T::PendingTransferExpired,
        T::DebitAccountAlreadyClosed,
        T::CreditAccountAlreadyClosed,
    ];
    for code in CreateTransferResult::ALL {
        assert!(
            covered.contains(code) || elsewhere.contains(code),
            "{code} has a test"
        );
    }
    for (name, transfer, expected) in rows {
        let mut ledger = fixture();
        let before = ledger.export();
        let result = apply_one(&mut ledger, START + 100 * SECOND, transfer);
        assert_eq!(result, expected, "{name}");
        if !result.is_ok() {
            let after = ledger.export();
            assert_eq!(
                before.accounts, after.accounts,
                "{name}: a failure changes nothing"
            );
            assert_eq!(
                before.pending, after.pending,
                "{name}: a failure changes nothing"
            );
        }
        ledger.verify().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn overflow_checks_cover_pending_credits_and_total_debits() {
    let mut ledger = fixture();
    // The shop has 100 + 5 credits pending: a pending credit of MAX - 104 overflows them.
    let big = u128::MAX - 104;
    assert_eq!(
        apply_one(&mut ledger, START, pending(NEW, OPERATOR, SHOP, big)),
        T::OverflowsCreditsPending
    );
    // The wallet's 105 pending and 50 posted debits plus MAX - 120 pass u128::MAX together.
    assert_eq!(
        apply_one(
            &mut ledger,
            START,
            pending(NEW, WALLET, OPERATOR, u128::MAX - 120)
        ),
        T::OverflowsDebits
    );
    // The same on the credit side, from a fresh account that can still be debited that much.
    assert!(ledger.create_accounts(START, &[Account::new(7, CNY, 3)])[0].is_ok());
    assert_eq!(
        apply_one(&mut ledger, START, pending(NEW, 7, SHOP, u128::MAX - 120)),
        T::OverflowsCredits
    );
    ledger.verify().expect("books consistent");
}

#[test]
fn a_timeout_past_the_end_of_the_clock_overflows() {
    let mut ledger = fixture();
    let late = TIMESTAMP_MAX - SECOND;
    let transfer = pending(NEW, WALLET, SHOP, 1).with_timeout(2);
    assert_eq!(apply_one(&mut ledger, late, transfer), T::OverflowsTimeout);
}

#[test]
fn partial_post_releases_the_rest_of_the_hold() {
    let mut ledger = fixture();
    let wallet_before = *ledger.account(WALLET).expect("exists");
    assert!(apply_one(&mut ledger, START, Transfer::post(NEW, HOLD, 30)).is_ok());
    let wallet = ledger.account(WALLET).expect("exists");
    let shop = ledger.account(SHOP).expect("exists");
    assert_eq!(wallet.debits_pending, wallet_before.debits_pending - 100);
    assert_eq!(wallet.debits_posted, wallet_before.debits_posted + 30);
    assert_eq!(shop.credits_posted, 50 + 30);
    assert_eq!(ledger.pending_status(HOLD), Some(PendingStatus::Posted));
    assert_eq!(ledger.transfer(NEW).expect("stored").amount, 30);
    assert_eq!(
        apply_one(&mut ledger, START, Transfer::void(NEW + 1, HOLD)),
        T::PendingTransferAlreadyPosted
    );
}

#[test]
fn a_hold_expires_when_its_timeout_passes_and_cannot_be_posted_after() {
    let mut ledger = fixture();
    let expires_at = ledger.transfer(SHORT_HOLD).expect("cached").expires_at();
    let at = expires_at.expect("has a timeout");
    assert_eq!(ledger.next_expiry(), Some(at));
    // Past the timeout but before `expire` runs, the hold already cannot be settled.
    assert_eq!(
        apply_one(&mut ledger, at, Transfer::post(NEW, SHORT_HOLD, AMOUNT_MAX)),
        T::PendingTransferExpired
    );
    let debits_pending = ledger.account(WALLET).expect("exists").debits_pending;
    assert!(ledger.expire(at - 1).is_empty(), "nothing expires early");
    assert_eq!(ledger.expire(at), vec![SHORT_HOLD]);
    assert_eq!(
        ledger.account(WALLET).expect("exists").debits_pending,
        debits_pending - 5
    );
    assert_eq!(
        ledger.pending_status(SHORT_HOLD),
        Some(PendingStatus::Expired)
    );
    assert_eq!(
        apply_one(&mut ledger, at, Transfer::void(NEW + 1, SHORT_HOLD)),
        T::PendingTransferExpired
    );
    ledger.verify().expect("books consistent");
}

#[test]
fn a_linked_chain_whose_last_event_fails_changes_nothing() {
    let mut ledger = fixture();
    let before = ledger.export();
    let linked = TransferFlags::LINKED;
    let chain = [
        Transfer::new(NEW, WALLET, SHOP, 10, CNY, 1).with_flags(linked),
        pending(NEW + 1, WALLET, SHOP, 10).with_flags(linked | TransferFlags::PENDING),
        Transfer::new(NEW + 2, EMPTY_WALLET, SHOP, 10, CNY, 1),
        Transfer::new(NEW + 3, WALLET, SHOP, 1, CNY, 1),
    ];
    let results = ledger.create_transfers(START, &chain);
    assert_eq!(
        results,
        vec![
            T::LinkedEventFailed,
            T::LinkedEventFailed,
            T::ExceedsCredits,
            T::Ok
        ]
    );
    assert!(ledger.transfer(NEW).is_none());
    assert!(ledger.transfer(NEW + 1).is_none());
    assert!(ledger.pending_status(NEW + 1).is_none());
    let after = ledger.export();
    assert_eq!(after.pending, before.pending);
    let shop = ledger.account(SHOP).expect("exists");
    assert_eq!(
        shop.credits_posted,
        50 + 1,
        "only the unlinked transfer moved money"
    );
}

#[test]
fn a_linked_chain_succeeds_as_one_and_events_after_a_failure_are_not_applied() {
    let mut ledger = fixture();
    let linked = TransferFlags::LINKED;
    let ok = ledger.create_transfers(
        START,
        &[
            Transfer::new(NEW, WALLET, SHOP, 10, CNY, 1).with_flags(linked),
            Transfer::new(NEW + 1, SHOP, OPERATOR, 1, CNY, 2),
        ],
    );
    assert_eq!(ok, vec![T::Ok, T::Ok]);
    let failed = ledger.create_transfers(
        START,
        &[
            Transfer::new(NEW + 2, EMPTY_WALLET, SHOP, 10, CNY, 1).with_flags(linked),
            Transfer::new(NEW + 3, WALLET, SHOP, 1, CNY, 1).with_flags(linked),
            Transfer::new(NEW + 4, WALLET, SHOP, 1, CNY, 1),
        ],
    );
    assert_eq!(
        failed,
        vec![
            T::ExceedsCredits,
            T::LinkedEventFailed,
            T::LinkedEventFailed
        ]
    );
    assert!(ledger.transfer(NEW + 4).is_none());
}

#[test]
fn a_chain_left_open_at_the_end_of_the_batch_fails() {
    let mut ledger = fixture();
    let linked = TransferFlags::LINKED;
    let results = ledger.create_transfers(
        START,
        &[
            Transfer::new(NEW, WALLET, SHOP, 10, CNY, 1).with_flags(linked),
            Transfer::new(NEW + 1, WALLET, SHOP, 10, CNY, 1).with_flags(linked),
        ],
    );
    assert_eq!(results, vec![T::LinkedEventFailed, T::LinkedEventChainOpen]);
    assert!(ledger.transfer(NEW).is_none());
}

#[test]
fn a_retried_transfer_moves_money_once() {
    let mut ledger = fixture();
    let transfer = Transfer::new(NEW, WALLET, SHOP, 10, CNY, 1);
    assert_eq!(apply_one(&mut ledger, START, transfer), T::Ok);
    let digest = ledger.digest();
    for _ in 0..3 {
        assert_eq!(apply_one(&mut ledger, START, transfer), T::Exists);
    }
    let retried_post = Transfer::post(NEW + 1, HOLD, AMOUNT_MAX);
    assert_eq!(apply_one(&mut ledger, START, retried_post), T::Ok);
    assert_eq!(apply_one(&mut ledger, START, retried_post), T::Exists);
    assert_eq!(
        apply_one(&mut ledger, START, Transfer::post(NEW + 1, HOLD, 100)),
        T::Exists,
        "naming the full amount is the same post"
    );
    assert_ne!(ledger.digest(), digest, "the post moved money once");
}

#[test]
fn a_balancing_transfer_sweeps_what_the_account_holds() {
    let mut ledger = fixture();
    let available = ledger.account(WALLET).expect("exists").available();
    assert_eq!(available, 1_000 - 50 - 100 - 5);
    let sweep = Transfer::new(NEW, WALLET, SHOP, AMOUNT_MAX, CNY, 1)
        .with_flags(TransferFlags::BALANCING_DEBIT);
    assert_eq!(apply_one(&mut ledger, START, sweep), T::Ok);
    assert_eq!(ledger.transfer(NEW).expect("stored").amount, 845);
    assert_eq!(ledger.account(WALLET).expect("exists").available(), 0);
    assert_eq!(
        apply_one(&mut ledger, START, sweep),
        T::Exists,
        "a capped retry is the same"
    );
}

#[test]
fn a_closing_transfer_closes_the_account_until_voided() {
    let mut ledger = fixture();
    let closing = Transfer::new(NEW, EMPTY_WALLET, OPERATOR, 0, CNY, 1)
        .with_flags(TransferFlags::PENDING | TransferFlags::CLOSING_DEBIT);
    assert_eq!(apply_one(&mut ledger, START, closing), T::Ok);
    assert!(
        ledger
            .account(EMPTY_WALLET)
            .expect("exists")
            .flags
            .contains(AccountFlags::CLOSED)
    );
    assert_eq!(
        apply_one(
            &mut ledger,
            START,
            Transfer::new(NEW + 1, OPERATOR, EMPTY_WALLET, 1, CNY, 1)
        ),
        T::CreditAccountAlreadyClosed
    );
    assert_eq!(
        apply_one(
            &mut ledger,
            START,
            Transfer::new(NEW + 1, EMPTY_WALLET, OPERATOR, 1, CNY, 1)
        ),
        T::DebitAccountAlreadyClosed
    );
    assert_eq!(
        apply_one(&mut ledger, START, Transfer::void(NEW + 2, NEW)),
        T::Ok
    );
    assert!(
        !ledger
            .account(EMPTY_WALLET)
            .expect("exists")
            .flags
            .contains(AccountFlags::CLOSED)
    );
    assert_eq!(
        apply_one(
            &mut ledger,
            START,
            Transfer::new(NEW + 1, OPERATOR, EMPTY_WALLET, 1, CNY, 1)
        ),
        T::Ok
    );
}

#[test]
fn every_account_result_code_is_reported() {
    use CreateAccountResult as A;
    let fresh = Account::new(50, CNY, 1);
    let existing = wallet(WALLET);
    let rows: Vec<(&str, Account, A)> = vec![
        ("new", fresh, A::Ok),
        (
            "timestamp set",
            Account {
                timestamp: 1,
                ..fresh
            },
            A::TimestampMustBeZero,
        ),
        (
            "closed at birth",
            fresh.with_flags(AccountFlags::CLOSED),
            A::ReservedFlag,
        ),
        ("id zero", Account { id: 0, ..fresh }, A::IdMustNotBeZero),
        (
            "id max",
            Account {
                id: u128::MAX,
                ..fresh
            },
            A::IdMustNotBeIntMax,
        ),
        (
            "other flags",
            existing.with_flags(AccountFlags::empty()),
            A::ExistsWithDifferentFlags,
        ),
        (
            "other data 128",
            Account {
                user_data_128: 1,
                ..existing
            },
            A::ExistsWithDifferentUserData128,
        ),
        (
            "other data 64",
            Account {
                user_data_64: 1,
                ..existing
            },
            A::ExistsWithDifferentUserData64,
        ),
        (
            "other data 32",
            Account {
                user_data_32: 1,
                ..existing
            },
            A::ExistsWithDifferentUserData32,
        ),
        (
            "other ledger",
            Account {
                ledger: USD,
                ..existing
            },
            A::ExistsWithDifferentLedger,
        ),
        (
            "other code",
            Account {
                code: 7,
                ..existing
            },
            A::ExistsWithDifferentCode,
        ),
        ("same again", existing, A::Exists),
        (
            "both limits",
            fresh.with_flags(
                AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
                    | AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
            ),
            A::FlagsAreMutuallyExclusive,
        ),
        (
            "debits pending",
            Account {
                debits_pending: 1,
                ..fresh
            },
            A::DebitsPendingMustBeZero,
        ),
        (
            "debits posted",
            Account {
                debits_posted: 1,
                ..fresh
            },
            A::DebitsPostedMustBeZero,
        ),
        (
            "credits pending",
            Account {
                credits_pending: 1,
                ..fresh
            },
            A::CreditsPendingMustBeZero,
        ),
        (
            "credits posted",
            Account {
                credits_posted: 1,
                ..fresh
            },
            A::CreditsPostedMustBeZero,
        ),
        (
            "ledger zero",
            Account { ledger: 0, ..fresh },
            A::LedgerMustNotBeZero,
        ),
        (
            "code zero",
            Account { code: 0, ..fresh },
            A::CodeMustNotBeZero,
        ),
    ];
    for (name, account, expected) in rows {
        let mut ledger = fixture();
        let count = ledger.account_count();
        let result = ledger.create_accounts(START, &[account])[0];
        assert_eq!(result, expected, "{name}");
        let created = usize::from(result.is_ok());
        assert_eq!(ledger.account_count(), count + created, "{name}");
    }
}

#[test]
fn a_linked_account_chain_fails_as_one() {
    use CreateAccountResult as A;
    let mut ledger = Ledger::new();
    let results = ledger.create_accounts(
        START,
        &[
            Account::new(1, CNY, 1).with_flags(AccountFlags::LINKED),
            Account::new(2, CNY, 0),
        ],
    );
    assert_eq!(results, vec![A::LinkedEventFailed, A::CodeMustNotBeZero]);
    assert_eq!(ledger.account_count(), 0);
}

#[test]
fn timestamps_increase_strictly_even_when_the_clock_goes_back() {
    let mut ledger = Ledger::new();
    ledger.create_accounts(START, &[Account::new(1, CNY, 1), Account::new(2, CNY, 1)]);
    ledger.create_accounts(START - SECOND, &[Account::new(3, CNY, 1)]);
    let stamps: Vec<u64> = (1..=3)
        .map(|id| ledger.account(id).expect("exists").timestamp)
        .collect();
    assert_eq!(stamps, vec![START, START + 1, START + 2]);
    assert_eq!(ledger.timestamp(), START + 2);
}

#[test]
fn a_rolled_back_scope_leaves_the_books_as_they_were() {
    let mut ledger = fixture();
    let before = ledger.clone();
    ledger.begin_scope();
    ledger.create_accounts(START, &[wallet(60)]);
    ledger.create_transfers(
        START,
        &[
            Transfer::new(NEW, OPERATOR, 60, 7, CNY, 1),
            Transfer::post(NEW + 1, HOLD, 10),
            pending(NEW + 2, WALLET, SHOP, 1).with_timeout(60),
        ],
    );
    ledger.expire(TIMESTAMP_MAX);
    ledger.rollback_scope();
    assert_eq!(ledger.export(), before.export());
    assert_eq!(ledger.digest(), before.digest());
    assert!(ledger.transfer(NEW).is_none());
    assert_eq!(ledger.pending_status(HOLD), Some(PendingStatus::Pending));
    assert_eq!(ledger.next_expiry(), before.next_expiry());
}

#[test]
fn export_then_import_gives_the_same_books() {
    let ledger = fixture();
    let imported = Ledger::import(ledger.export()).expect("a valid snapshot imports");
    assert_eq!(imported.digest(), ledger.digest());
    assert_eq!(imported.export(), ledger.export());
    assert_eq!(imported.next_expiry(), ledger.next_expiry());
}

#[test]
fn import_refuses_books_that_do_not_balance() {
    let mut snapshot = fixture().export();
    snapshot.accounts[0].credits_posted += 1;
    assert_eq!(
        Ledger::import(snapshot).err(),
        Some(InvariantViolation::Unbalanced(CNY))
    );
    let mut snapshot = fixture().export();
    snapshot.pending.pop();
    assert!(matches!(
        Ledger::import(snapshot),
        Err(InvariantViolation::PendingBalanceMismatch(_))
    ));
}

#[test]
fn evicted_transfers_come_back_through_the_cache() {
    let mut ledger = fixture();
    ledger.evict_settled();
    assert!(ledger.transfer(FUNDED).is_none());
    assert!(ledger.transfer(HOLD).is_some(), "open holds stay");
    let retry = [
        Transfer::new(FUNDED, OPERATOR, WALLET, 1_000, CNY, 1),
        Transfer::void(NEW, POSTED_HOLD),
        Transfer::new(NEW + 1, WALLET, SHOP, 1, CNY, 1),
    ];
    assert_eq!(ledger.uncached_ids(&retry), vec![FUNDED, POSTED_HOLD]);
    ledger.cache(
        Transfer {
            timestamp: START,
            ..retry[0]
        },
        None,
    );
    ledger.cache(
        Transfer {
            timestamp: START,
            ..pending(POSTED_HOLD, WALLET, SHOP, 50)
        },
        Some(PendingStatus::Posted),
    );
    let results = ledger.create_transfers(START, &retry);
    assert_eq!(
        results,
        vec![T::Exists, T::PendingTransferAlreadyPosted, T::Ok]
    );
}

#[test]
fn result_names_are_unique_and_parse_back() {
    let mut names = std::collections::HashSet::new();
    for result in CreateTransferResult::ALL {
        assert!(names.insert(result.as_str()), "{result} named once");
        assert_eq!(CreateTransferResult::parse(result.as_str()), Some(*result));
    }
    for result in CreateAccountResult::ALL {
        assert_eq!(CreateAccountResult::parse(result.as_str()), Some(*result));
    }
}

// Regression tests for the review of the first ledger version (issue 2).

fn two_accounts(ledger: u32) -> (Account, Account) {
    (Account::new(1, ledger, 1), Account::new(2, ledger, 1))
}

fn stored_pending(id: u128, debit: u128, credit: u128, amount: u128) -> Transfer {
    Transfer {
        timestamp: 1,
        ..pending(id, debit, credit, amount)
    }
}

#[test]
fn available_saturates_instead_of_overflowing() {
    let mut ledger = Ledger::new();
    let (a, b) = two_accounts(CNY);
    ledger.create_accounts(1, &[a, b]);
    let results = ledger.create_transfers(
        2,
        &[
            Transfer::new(10, 1, 2, 1u128 << 127, CNY, 1),
            pending(11, 1, 2, 2),
        ],
    );
    assert_eq!(results, vec![T::Ok, T::Ok]);
    assert_eq!(ledger.account(1).expect("exists").available(), i128::MIN);
}

#[test]
fn import_reports_balances_that_overflow() {
    let mut a = Account::new(1, CNY, 1).with_flags(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS);
    a.debits_posted = u128::MAX;
    a.debits_pending = 1;
    let mut b = Account::new(2, CNY, 1);
    b.credits_posted = u128::MAX;
    b.credits_pending = 1;
    let snapshot = Snapshot {
        timestamp: 1,
        transfer_id_max: 7,
        accounts: vec![a, b],
        pending: vec![stored_pending(7, 1, 2, 1)],
    };
    assert_eq!(
        Ledger::import(snapshot).err(),
        Some(InvariantViolation::BalanceOverflow(1))
    );
}

#[test]
fn import_refuses_pending_transfers_create_transfer_never_makes() {
    let (mut a, mut b) = two_accounts(CNY);
    a.debits_pending = 5;
    a.credits_pending = 5;
    let to_itself = Snapshot {
        timestamp: 1,
        transfer_id_max: 7,
        accounts: vec![a],
        pending: vec![stored_pending(7, 1, 1, 5)],
    };
    assert_eq!(
        Ledger::import(to_itself).err(),
        Some(InvariantViolation::BadPendingTransfer(7))
    );
    a.credits_pending = 0;
    b.credits_pending = 5;
    let above_id_max = Snapshot {
        timestamp: 1,
        transfer_id_max: 0,
        accounts: vec![a, b],
        pending: vec![stored_pending(7, 1, 2, 5)],
    };
    assert_eq!(
        Ledger::import(above_id_max).err(),
        Some(InvariantViolation::BadPendingTransfer(7))
    );
    let mut dollars = Account::new(3, USD, 1);
    dollars.credits_pending = 5;
    let mut cny = Account::new(4, CNY, 1);
    cny.credits_pending = 5;
    let mut usd = Account::new(2, USD, 1);
    usd.debits_pending = 5;
    let across_ledgers = Snapshot {
        timestamp: 1,
        transfer_id_max: 8,
        accounts: vec![a, usd, dollars, cny],
        pending: vec![
            stored_pending(7, 1, 3, 5),
            Transfer {
                ledger: USD,
                ..stored_pending(8, 2, 4, 5)
            },
        ],
    };
    assert_eq!(
        Ledger::import(across_ledgers).err(),
        Some(InvariantViolation::BadPendingTransfer(7))
    );
}

#[test]
fn verify_reports_the_same_violation_on_every_run() {
    let mut accounts: Vec<Account> = (1..=8)
        .map(|id| {
            let mut account =
                Account::new(id, CNY, 1).with_flags(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS);
            account.credits_posted = 1;
            account
        })
        .collect();
    let mut bank = Account::new(9, CNY, 1);
    bank.debits_posted = 8;
    accounts.push(bank);
    for _ in 0..20 {
        let snapshot = Snapshot {
            timestamp: 1,
            transfer_id_max: 0,
            accounts: accounts.clone(),
            pending: Vec::new(),
        };
        assert_eq!(
            Ledger::import(snapshot).err(),
            Some(InvariantViolation::LimitCrossed(1))
        );
    }
}

#[test]
#[should_panic(expected = "cache between scopes")]
fn caching_inside_a_scope_is_refused() {
    let mut ledger = Ledger::new();
    let (a, b) = two_accounts(CNY);
    ledger.create_accounts(1, &[a, b]);
    ledger.create_transfers(2, &[Transfer::new(5, 1, 2, 1, CNY, 1)]);
    let five = *ledger.transfer(5).expect("cached");
    ledger.evict_settled();
    ledger.begin_scope();
    ledger.cache(five, None);
}

#[test]
fn expiring_moves_the_clock_past_every_earlier_event() {
    let mut ledger = fixture();
    let at = ledger.next_expiry().expect("the short hold expires");
    let before = ledger.timestamp();
    assert!(ledger.expire(at - 1).is_empty());
    assert_eq!(
        ledger.timestamp(),
        before,
        "nothing expired, the clock stays"
    );
    // Expire at a time earlier than the last event: the expiry still comes after it.
    let mut late = fixture();
    late.create_transfers(
        at + 10 * SECOND,
        &[Transfer::new(NEW, WALLET, SHOP, 1, CNY, 1)],
    );
    let last_event = late.timestamp();
    assert_eq!(late.expire(at), vec![SHORT_HOLD]);
    assert_eq!(late.timestamp(), last_event + 1);
    assert_eq!(ledger.expire(at), vec![SHORT_HOLD]);
    assert_eq!(ledger.timestamp(), at);
    let next = ledger.create_transfers(at, &[Transfer::new(NEW, WALLET, SHOP, 1, CNY, 1)]);
    assert_eq!(next, vec![T::Ok]);
    assert!(ledger.transfer(NEW).expect("stored").timestamp > at);
}
