//! Property tests: the ledger's invariants hold over random batches of random events.

use formica_ledger::{
    AMOUNT_MAX, Account, AccountFlags, CreateTransferResult, Ledger, NANOS_PER_SECOND, Transfer,
    TransferFlags,
};
use proptest::prelude::*;

const ACCOUNTS: u128 = 8;
const BANK: u128 = 100;
const LEDGERS: u32 = 2;
const FUNDING: u128 = 10_000;

/// Two ledgers of accounts with random limits, each funded from its ledger's bank account.
fn world(flags: &[u8]) -> Ledger {
    let mut ledger = Ledger::new();
    let mut accounts = Vec::new();
    for ledger_id in 1..=LEDGERS {
        accounts.push(Account::new(BANK + u128::from(ledger_id), ledger_id, 9));
    }
    for id in 1..=ACCOUNTS {
        let limit = match flags[id as usize % flags.len()] % 3 {
            0 => AccountFlags::empty(),
            1 => AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
            _ => AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
        };
        accounts.push(Account::new(id, ledger_of(id), 1).with_flags(limit));
    }
    assert!(
        ledger
            .create_accounts(1, &accounts)
            .iter()
            .all(|r| r.is_ok())
    );
    let funding: Vec<Transfer> = (1..=ACCOUNTS)
        .map(|id| {
            let bank = BANK + u128::from(ledger_of(id));
            Transfer::new(u128::MAX - id, bank, id, FUNDING, ledger_of(id), 9)
        })
        .collect();
    ledger.create_transfers(1, &funding);
    ledger
}

fn ledger_of(account: u128) -> u32 {
    (account % u128::from(LEDGERS)) as u32 + 1
}

fn flags() -> impl Strategy<Value = TransferFlags> {
    prop_oneof![
        4 => Just(TransferFlags::empty()),
        3 => Just(TransferFlags::PENDING),
        2 => Just(TransferFlags::POST_PENDING_TRANSFER),
        2 => Just(TransferFlags::VOID_PENDING_TRANSFER),
        1 => Just(TransferFlags::BALANCING_DEBIT),
        1 => Just(TransferFlags::BALANCING_CREDIT),
        1 => Just(TransferFlags::PENDING | TransferFlags::CLOSING_DEBIT),
        1 => (0u16..256).prop_map(TransferFlags::from_bits_truncate),
    ]
    .prop_flat_map(|flags| prop_oneof![4 => Just(flags), 1 => Just(flags | TransferFlags::LINKED)])
}

fn amount() -> impl Strategy<Value = u128> {
    prop_oneof![
        8 => 1u128..2_000,
        1 => Just(0u128),
        1 => Just(AMOUNT_MAX),
        1 => (u128::MAX - 50_000)..u128::MAX,
    ]
}

/// Transfers whose ids, accounts and pending ids collide often, so that idempotency, settlement
/// and validation all get exercised.
fn transfer() -> impl Strategy<Value = Transfer> {
    (
        1u128..80,
        0u128..=ACCOUNTS + 1,
        0u128..=ACCOUNTS + 1,
        amount(),
        flags(),
        prop_oneof![3 => Just(0u128), 2 => 1u128..80],
        prop_oneof![3 => Just(0u32), 1 => 1u32..4],
        0u32..=LEDGERS,
        prop_oneof![9 => Just(1u16), 1 => Just(0u16)],
    )
        .prop_map(
            |(id, debit, credit, amount, flags, pending_id, timeout, ledger, code)| Transfer {
                id,
                debit_account_id: debit,
                credit_account_id: credit,
                amount,
                pending_id,
                timeout,
                // Mostly the debit account's ledger, sometimes another one.
                ledger: if ledger == 0 {
                    ledger_of(debit)
                } else {
                    ledger
                },
                code,
                flags,
                ..Transfer::default()
            },
        )
}

fn batches() -> impl Strategy<Value = Vec<Vec<Transfer>>> {
    prop::collection::vec(prop::collection::vec(transfer(), 0..24), 1..8)
}

/// The index ranges of the linked chains (and single events) of a batch.
fn chains(batch: &[Transfer]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    for (index, event) in batch.iter().enumerate() {
        if !event.flags.contains(TransferFlags::LINKED) || index == batch.len() - 1 {
            ranges.push(start..index + 1);
            start = index + 1;
        }
    }
    ranges
}

fn now_of(batch_index: usize) -> u64 {
    (batch_index as u64 + 1) * 2 * NANOS_PER_SECOND
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn books_balance_and_limits_hold_after_every_batch(
        account_flags in prop::collection::vec(any::<u8>(), 1..8),
        batches in batches(),
    ) {
        let mut ledger = world(&account_flags);
        ledger.verify().expect("the world starts consistent");
        for (index, batch) in batches.iter().enumerate() {
            ledger.create_transfers(now_of(index), batch);
            prop_assert_eq!(ledger.verify(), Ok(()));
            ledger.expire(now_of(index) + NANOS_PER_SECOND);
            prop_assert_eq!(ledger.verify(), Ok(()));
        }
    }

    #[test]
    fn replaying_what_succeeded_changes_nothing(
        account_flags in prop::collection::vec(any::<u8>(), 1..8),
        batches in batches(),
    ) {
        let mut ledger = world(&account_flags);
        for (index, batch) in batches.iter().enumerate() {
            let results = ledger.create_transfers(now_of(index), batch);
            // Successful chains are whole, so this keeps every chain intact.
            let succeeded: Vec<Transfer> = batch
                .iter()
                .zip(&results)
                .filter(|(_, result)| result.is_ok())
                .map(|(event, _)| *event)
                .collect();
            let before = ledger.export();
            let replayed = ledger.create_transfers(now_of(index) + 1, &succeeded);
            for (event, result) in succeeded.iter().zip(&replayed) {
                if event.flags.contains(TransferFlags::LINKED) {
                    prop_assert!(!result.is_ok(), "a replayed chain moves nothing: {:?}", result);
                } else {
                    // The end of a chain fails with its chain; a lone event answers exists.
                    prop_assert!(
                        *result == CreateTransferResult::Exists
                            || *result == CreateTransferResult::LinkedEventFailed,
                        "{:?}", result
                    );
                }
            }
            // Only the clock moved on.
            let after = ledger.export();
            prop_assert_eq!(after.accounts, before.accounts);
            prop_assert_eq!(after.pending, before.pending);
        }
    }

    #[test]
    fn linked_chains_succeed_or_fail_as_one(
        account_flags in prop::collection::vec(any::<u8>(), 1..8),
        batch in prop::collection::vec(transfer(), 1..40),
    ) {
        let mut ledger = world(&account_flags);
        let before = ledger.clone();
        let results = ledger.create_transfers(now_of(0), &batch);
        for chain in chains(&batch) {
            let oks = results[chain.clone()].iter().filter(|r| r.is_ok()).count();
            prop_assert!(oks == 0 || oks == chain.len(), "chain {:?}: {:?}", chain, &results[chain.clone()]);
            if oks == 0 {
                for event in &batch[chain.clone()] {
                    // Nothing of a failed chain is stored, unless it existed before.
                    let existed = before.transfer(event.id).is_some();
                    let created_elsewhere = batch.iter().zip(&results).any(|(other, r)| other.id == event.id && r.is_ok());
                    prop_assert!(existed || created_elsewhere || ledger.transfer(event.id).is_none());
                }
            }
        }
    }

    #[test]
    fn one_call_equals_applying_chain_by_chain(
        account_flags in prop::collection::vec(any::<u8>(), 1..8),
        batch in prop::collection::vec(transfer(), 1..40),
    ) {
        let mut whole = world(&account_flags);
        let mut piecewise = whole.clone();
        let now = now_of(0);
        let results = whole.create_transfers(now, &batch);
        let mut piece_results = Vec::new();
        for chain in chains(&batch) {
            // Each piece gets the timestamps it had in the whole batch.
            let piece_now = now + chain.start as u64;
            piece_results.extend(piecewise.create_transfers(piece_now, &batch[chain]));
        }
        prop_assert_eq!(&results, &piece_results);
        prop_assert_eq!(whole.digest(), piecewise.digest());
        prop_assert_eq!(whole.export(), piecewise.export());
    }

    #[test]
    fn export_and_import_preserve_the_state(
        account_flags in prop::collection::vec(any::<u8>(), 1..8),
        batches in batches(),
    ) {
        let mut ledger = world(&account_flags);
        for (index, batch) in batches.iter().enumerate() {
            ledger.create_transfers(now_of(index), batch);
        }
        let imported = Ledger::import(ledger.export()).expect("a consistent ledger imports");
        prop_assert_eq!(imported.digest(), ledger.digest());
        prop_assert_eq!(imported.next_expiry(), ledger.next_expiry());
    }

    #[test]
    fn a_rolled_back_scope_restores_the_state(
        account_flags in prop::collection::vec(any::<u8>(), 1..8),
        committed in batches(),
        rolled_back in batches(),
    ) {
        let mut ledger = world(&account_flags);
        for (index, batch) in committed.iter().enumerate() {
            ledger.begin_scope();
            ledger.create_transfers(now_of(index), batch);
            ledger.commit_scope();
        }
        let digest = ledger.digest();
        let snapshot = ledger.export();
        ledger.begin_scope();
        for (index, batch) in rolled_back.iter().enumerate() {
            ledger.create_transfers(now_of(committed.len() + index), batch);
            ledger.expire(now_of(committed.len() + index));
        }
        ledger.rollback_scope();
        prop_assert_eq!(ledger.digest(), digest);
        prop_assert_eq!(ledger.export(), snapshot);
    }
}
