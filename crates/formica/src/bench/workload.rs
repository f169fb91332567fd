//! The payments every ledger benchmark applies: wallets funded from a bank, paying either a
//! random account or the one hot merchant.

use formica_ledger::{Account, AccountFlags, Transfer};
use rand::Rng;
use rand::rngs::SmallRng;

/// The ledger of the benchmark's accounts (ISO 4217 numeric code of CNY).
pub const CNY: u32 = 156;
const WALLET: u16 = 1;
const MERCHANT: u16 = 2;
const BANK: u16 = 9;
const PAYMENT: u16 = 1;
/// What each wallet starts with: enough that no payment of a run is refused, small enough
/// that the bank's total fits the store's 64-bit balances for up to 900,000 wallets.
const WALLET_FUNDING: u128 = 10_000_000_000_000;
/// Transfer ids of the workload start here, above the funding transfers' ids.
pub const FIRST_PAYMENT_ID: u128 = 1 << 64;

/// The shape of the workload.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Wallets (account 1 is the hot merchant, the rest pay).
    pub accounts: u64,
    /// Percentage of payments that credit the hot merchant.
    pub hot: u8,
}

impl Shape {
    /// The bank account that funds the wallets.
    pub fn bank(&self) -> u128 {
        u128::from(self.accounts) + 1
    }

    /// Every account of the workload: the bank, the merchant and the wallets.
    pub fn accounts(&self) -> Vec<Account> {
        let mut accounts = vec![
            Account::new(self.bank(), CNY, BANK),
            Account::new(1, CNY, MERCHANT),
        ];
        for id in 2..=u128::from(self.accounts) {
            accounts.push(
                Account::new(id, CNY, WALLET)
                    .with_flags(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
            );
        }
        accounts
    }

    /// One funding transfer from the bank to each wallet.
    pub fn funding(&self) -> Vec<Transfer> {
        (2..=u128::from(self.accounts))
            .map(|id| Transfer::new(id, self.bank(), id, WALLET_FUNDING, CNY, BANK))
            .collect()
    }

    /// One payment from a random wallet to the hot merchant (with probability `hot`%) or to
    /// another random account.
    pub fn payment(&self, rng: &mut SmallRng, id: u128) -> Transfer {
        let accounts = self.accounts;
        let debit = rng.random_range(2..=accounts);
        let credit = if rng.random_range(0..100u8) < self.hot {
            1
        } else {
            let other = rng.random_range(1..accounts);
            if other >= debit { other + 1 } else { other }
        };
        let amount = rng.random_range(1..=100_000u128);
        Transfer::new(id, debit.into(), credit.into(), amount, CNY, PAYMENT)
    }
}
