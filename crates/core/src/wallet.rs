//! Wallets: a person's balance per currency, money in from and out to bank cards (bank
//! movements that wait for the bank's answer), transfers between people, and the daily
//! outgoing limit set by the person's identity level.
//!
//! A top-up moves no money until the bank says it succeeded. A withdrawal reserves the money at
//! once with a pending transfer to the bank clearing account and posts it when the bank pays
//! out, or voids it when the bank fails (or never answers within the bank timeout).

use formica_ledger::{AccountFlags, Transfer, TransferFlags};
use serde::{Deserialize, Serialize};

use crate::Core;
use crate::money::{Currency, Money};
use crate::products::{
    Books, Id, Outcome, PLATFORM, PersonView, Refusal, TransferReceipt, account_id, account_kind,
    refusal_for, transfer_kind,
};

/// A person's identity level: it sets their daily outgoing limit.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Signed up, identity not checked.
    #[default]
    Unverified,
    /// Identity checked (by an operator).
    Verified,
}

impl Level {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Unverified => "unverified",
            Level::Verified => "verified",
        }
    }

    /// The inverse of `as_str`.
    pub fn parse(name: &str) -> Option<Level> {
        match name {
            "unverified" => Some(Level::Unverified),
            "verified" => Some(Level::Verified),
            _ => None,
        }
    }
}

/// What the core keeps about a person: the level and what they spent today per currency.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Person {
    /// Identity level.
    pub level: Level,
    /// Per currency: the day and the amount paid out that day, in minor units.
    pub spending: Vec<Spending>,
}

/// Money a person paid out on one day in one currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spending {
    /// The currency.
    pub currency: Currency,
    /// The day (in the platform's time zone).
    pub day: i64,
    /// Paid out that day, in minor units.
    pub spent_minor: u64,
}

/// Money in or out through the bank channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// From a bank card into the wallet.
    TopUp,
    /// From the wallet to a bank card.
    Withdrawal,
}

/// Where a bank movement stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovementStatus {
    /// Waiting for the bank.
    Pending,
    /// The bank moved the money.
    Succeeded,
    /// The bank refused, or did not answer in time: the wallet is as before.
    Failed,
}

/// A top-up or withdrawal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Movement {
    /// Its id.
    pub id: Id,
    /// Whose wallet.
    pub user_id: Id,
    /// Which way.
    pub kind: MovementKind,
    /// How much.
    pub amount: Money,
    /// The linked bank card.
    pub card_id: Id,
    /// Where it stands.
    pub status: MovementStatus,
    /// Why it failed, when it did.
    pub failure: Option<String>,
    /// When it was asked for (nanoseconds).
    pub created_at: u64,
    /// When the bank answered.
    pub settled_at: Option<u64>,
    /// When it fails if the bank has not answered.
    #[serde(skip)]
    pub deadline: u64,
    /// The pending transfer that reserves a withdrawal's money.
    #[serde(skip)]
    pub hold: Option<u128>,
}

impl Movement {
    /// Whether the bank has yet to answer.
    pub fn is_open(&self) -> bool {
        self.status == MovementStatus::Pending
    }
}

/// Wallet commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalletCommand {
    /// Opens the person's wallet in `currency` (and the person, at first).
    OpenWallet {
        /// The person.
        user_id: Id,
        /// The currency.
        currency: Currency,
    },
    /// Sets a person's identity level.
    SetLevel {
        /// The person.
        user_id: Id,
        /// The new level.
        level: Level,
    },
    /// Asks the bank for money from a card.
    StartTopUp {
        /// The person.
        user_id: Id,
        /// How much.
        amount: Money,
        /// The card.
        card_id: Id,
    },
    /// Reserves money and asks the bank to pay it out to a card.
    StartWithdrawal {
        /// The person.
        user_id: Id,
        /// How much.
        amount: Money,
        /// The card.
        card_id: Id,
    },
    /// The bank's answer to a movement.
    SettleMovement {
        /// The movement.
        movement_id: Id,
        /// Whether the bank moved the money.
        succeeded: bool,
        /// Why not, when it did not.
        failure: Option<String>,
    },
    /// Pays another person at once.
    Transfer {
        /// The payer.
        from_user_id: Id,
        /// The payee.
        to_user_id: Id,
        /// How much.
        amount: Money,
        /// A note the payee sees.
        note: String,
    },
}

/// The wallet account flags: a wallet never goes below zero.
const WALLET_FLAGS: AccountFlags = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;

/// The wallet account of `user` in `currency`.
pub fn wallet_account(user: Id, currency: Currency) -> u128 {
    account_id(user, account_kind::WALLET, currency)
}

/// The platform's bank clearing account in `currency`.
pub fn clearing_account(currency: Currency) -> u128 {
    account_id(PLATFORM, account_kind::BANK_CLEARING, currency)
}

impl Core {
    pub(crate) fn apply_wallet(
        &mut self,
        now: u64,
        command: &WalletCommand,
    ) -> Result<Outcome, Refusal> {
        match command {
            WalletCommand::OpenWallet { user_id, currency } => {
                self.open_wallet(now, *user_id, *currency);
                Ok(self.person_view(*user_id))
            }
            WalletCommand::SetLevel { user_id, level } => {
                let mut person = self.person(*user_id, None)?.clone();
                person.level = *level;
                self.products.put_person(*user_id, person);
                self.rescore(now, *user_id);
                Ok(self.person_view(*user_id))
            }
            WalletCommand::StartTopUp {
                user_id,
                amount,
                card_id,
            } => {
                positive(*amount)?;
                self.person(*user_id, Some(amount.currency))?;
                let movement = self.new_movement(now, *user_id, MovementKind::TopUp, *amount);
                let movement = Movement {
                    card_id: *card_id,
                    ..movement
                };
                self.products.put_movement(movement.clone());
                Ok(Outcome::Movement(movement))
            }
            WalletCommand::StartWithdrawal {
                user_id,
                amount,
                card_id,
            } => {
                positive(*amount)?;
                self.check_limit(now, *user_id, *amount)?;
                let hold = self.products.next_transfer_id(now);
                let currency = amount.currency;
                let pending = Transfer::new(
                    hold,
                    wallet_account(*user_id, currency),
                    clearing_account(currency),
                    u128::from(amount.amount_minor),
                    currency.ledger(),
                    transfer_kind::WITHDRAWAL,
                )
                .with_flags(TransferFlags::PENDING);
                self.transfer(now, pending)?;
                self.spend(now, *user_id, *amount);
                let movement = Movement {
                    card_id: *card_id,
                    hold: Some(hold),
                    ..self.new_movement(now, *user_id, MovementKind::Withdrawal, *amount)
                };
                self.products.put_movement(movement.clone());
                self.products.announce(
                    *user_id,
                    "withdrawal.pending",
                    &Outcome::Movement(movement.clone()),
                    now,
                );
                Ok(Outcome::Movement(movement))
            }
            WalletCommand::SettleMovement {
                movement_id,
                succeeded,
                failure,
            } => {
                let movement = self
                    .products
                    .movements
                    .get(movement_id)
                    .cloned()
                    .ok_or(Refusal::MovementNotFound)?;
                let failure = (!succeeded).then(|| {
                    failure
                        .clone()
                        .unwrap_or_else(|| "refused by the bank".to_owned())
                });
                self.settle_movement(now, movement, failure)
            }
            WalletCommand::Transfer {
                from_user_id,
                to_user_id,
                amount,
                note,
            } => {
                positive(*amount)?;
                if from_user_id == to_user_id {
                    return Err(Refusal::SamePerson);
                }
                if !self.products.people.contains_key(to_user_id) {
                    return Err(Refusal::PayeeNotFound);
                }
                self.check_limit(now, *from_user_id, *amount)?;
                let currency = amount.currency;
                let id = self.products.next_id(now);
                let transfer = Transfer::new(
                    crate::products::transfer_id(id),
                    wallet_account(*from_user_id, currency),
                    wallet_account(*to_user_id, currency),
                    u128::from(amount.amount_minor),
                    currency.ledger(),
                    transfer_kind::TRANSFER,
                );
                // The payee's wallet in this currency may not exist yet: a payee who never
                // held this currency gets one, once the payer is known to afford it (an
                // account made for a refused transfer would be a change on refusal).
                let payer = self
                    .ledger
                    .account(wallet_account(*from_user_id, currency))
                    .expect("check_limit found the payer's wallet");
                if payer.available() < i128::from(amount.amount_minor) {
                    return Err(Refusal::InsufficientFunds);
                }
                let created = self.ensure_wallet(now, *to_user_id, currency);
                let sent = self.transfer(now, transfer);
                assert!(
                    !(created && sent.is_err()),
                    "a transfer into a new wallet that the payer affords cannot be refused"
                );
                sent?;
                self.spend(now, *from_user_id, *amount);
                let receipt = TransferReceipt {
                    id,
                    from_user_id: *from_user_id,
                    to_user_id: *to_user_id,
                    amount: *amount,
                    note: note.clone(),
                    created_at: now,
                };
                self.products.record_transfer(receipt.clone());
                self.credit_transfer(now, *from_user_id, *to_user_id);
                let outcome = Outcome::Transfer(receipt);
                self.products.announce_to(
                    &[
                        (*from_user_id, "transfer.sent"),
                        (*to_user_id, "transfer.received"),
                    ],
                    &outcome,
                    now,
                );
                Ok(outcome)
            }
        }
    }

    /// Settles a bank movement: `failure` is `None` when the bank moved the money.
    pub(crate) fn settle_movement(
        &mut self,
        now: u64,
        movement: Movement,
        failure: Option<String>,
    ) -> Result<Outcome, Refusal> {
        let currency = movement.amount.currency;
        let transfer_id = self.products.next_transfer_id(now);
        match (movement.kind, &failure) {
            (MovementKind::TopUp, None) => {
                let credit = Transfer::new(
                    transfer_id,
                    clearing_account(currency),
                    wallet_account(movement.user_id, currency),
                    u128::from(movement.amount.amount_minor),
                    currency.ledger(),
                    transfer_kind::TOP_UP,
                );
                self.transfer(now, credit)?;
            }
            (MovementKind::TopUp, Some(_)) => {}
            (MovementKind::Withdrawal, None) => {
                let hold = movement.hold.expect("a withdrawal holds its money");
                self.transfer(
                    now,
                    Transfer::post(transfer_id, hold, formica_ledger::AMOUNT_MAX),
                )
                .expect("a withdrawal's hold is open until the bank answers");
            }
            (MovementKind::Withdrawal, Some(_)) => {
                let hold = movement.hold.expect("a withdrawal holds its money");
                self.transfer(now, Transfer::void(transfer_id, hold))
                    .expect("a withdrawal's hold is open until the bank answers");
                // Money that never left does not count against the day it was asked on.
                self.unspend(movement.created_at, movement.user_id, movement.amount);
                self.settlement_returned(now, movement.user_id, movement.amount.amount_minor);
            }
        }
        let succeeded = failure.is_none();
        let movement = Movement {
            status: if succeeded {
                MovementStatus::Succeeded
            } else {
                MovementStatus::Failed
            },
            failure,
            settled_at: Some(now),
            ..movement
        };
        self.products.put_movement(movement.clone());
        let topic = match (movement.kind, succeeded) {
            (MovementKind::TopUp, true) => "top_up.succeeded",
            (MovementKind::TopUp, false) => "top_up.failed",
            (MovementKind::Withdrawal, true) => "withdrawal.succeeded",
            (MovementKind::Withdrawal, false) => "withdrawal.failed",
        };
        let outcome = Outcome::Movement(movement.clone());
        // A merchant's settlement is news for the person who runs it.
        let to = self
            .products
            .merchants
            .get(&movement.user_id)
            .map_or(movement.user_id, |m| m.owner_id);
        self.products.announce(to, topic, &outcome, now);
        Ok(outcome)
    }

    /// Opens the person (if new) and their wallet in `currency` (if missing).
    fn open_wallet(&mut self, now: u64, user: Id, currency: Currency) {
        if !self.products.people.contains_key(&user) {
            self.products.put_person(user, Person::default());
        }
        self.open_credit(now, user);
        self.ensure_wallet(now, user, currency);
    }

    /// Creates the person's wallet in `currency` if it is missing, with the platform's bank
    /// clearing account in that currency (so money can always come in and go out of a
    /// wallet that exists). Whether the wallet was created.
    pub(crate) fn ensure_wallet(&mut self, now: u64, user: Id, currency: Currency) -> bool {
        let mut books = self.books();
        books.ensure_account(
            now,
            clearing_account(currency),
            currency,
            account_kind::BANK_CLEARING,
            AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
        );
        books.ensure_account(
            now,
            wallet_account(user, currency),
            currency,
            account_kind::WALLET,
            WALLET_FLAGS,
        )
    }

    fn person_view(&self, user: Id) -> Outcome {
        let person = &self.products.people[&user];
        Outcome::Person(PersonView {
            user_id: user,
            level: person.level,
        })
    }

    /// The person, who must have a wallet in `currency` if one is named.
    pub(crate) fn person(&self, user: Id, currency: Option<Currency>) -> Result<&Person, Refusal> {
        let person = self
            .products
            .people
            .get(&user)
            .ok_or(Refusal::WalletNotFound {
                currency: currency.unwrap_or(Currency::CNY),
            })?;
        if let Some(currency) = currency
            && self
                .ledger
                .account(wallet_account(user, currency))
                .is_none()
        {
            return Err(Refusal::WalletNotFound { currency });
        }
        Ok(person)
    }

    /// Refuses an outgoing payment that would pass the person's daily limit.
    pub(crate) fn check_limit(&self, now: u64, user: Id, amount: Money) -> Result<(), Refusal> {
        let person = self.person(user, Some(amount.currency))?;
        let limit = self
            .products
            .settings
            .daily_limit_minor(person.level, amount.currency);
        let spent = spent_today(&self.products.settings, person, now, amount.currency);
        if spent.saturating_add(amount.amount_minor) > limit {
            return Err(Refusal::DailyLimitExceeded {
                limit: Money::new(limit, amount.currency),
                spent: Money::new(spent, amount.currency),
            });
        }
        Ok(())
    }

    /// Counts an outgoing payment against the person's daily limit.
    pub(crate) fn spend(&mut self, now: u64, user: Id, amount: Money) {
        let day = self.products.settings.day(now);
        let mut person = self.products.people[&user].clone();
        let spent = spent_today(&self.products.settings, &person, now, amount.currency);
        person.spending.retain(|s| s.currency != amount.currency);
        person.spending.push(Spending {
            currency: amount.currency,
            day,
            spent_minor: spent.saturating_add(amount.amount_minor),
        });
        self.products.put_person(user, person);
    }

    /// Gives back what a payment asked for on the day of `at` counted against the limit, if
    /// that day's count still stands.
    pub(crate) fn unspend(&mut self, at: u64, user: Id, amount: Money) {
        let day = self.products.settings.day(at);
        let Some(person) = self.products.people.get(&user) else {
            return;
        };
        let mut person = person.clone();
        let Some(spending) = person
            .spending
            .iter_mut()
            .find(|s| s.currency == amount.currency && s.day == day)
        else {
            return;
        };
        spending.spent_minor = spending.spent_minor.saturating_sub(amount.amount_minor);
        self.products.put_person(user, person);
    }

    /// Creates one transfer, refusing (with nothing changed) what the books refuse.
    pub(crate) fn transfer(&mut self, now: u64, transfer: Transfer) -> Result<(), Refusal> {
        let mut transfers = [transfer];
        self.books()
            .transfer_chain(now, &mut transfers)
            .map_err(refusal_for)?;
        self.record_ledger_transfer(transfer.id);
        Ok(())
    }

    /// Creates linked transfers that succeed or fail together.
    pub(crate) fn transfer_all(
        &mut self,
        now: u64,
        mut transfers: Vec<Transfer>,
    ) -> Result<(), Refusal> {
        self.books()
            .transfer_chain(now, &mut transfers)
            .map_err(refusal_for)?;
        for transfer in &transfers {
            self.record_ledger_transfer(transfer.id);
        }
        Ok(())
    }

    pub(crate) fn books(&mut self) -> Books<'_> {
        Books {
            ledger: &mut self.ledger,
            created: &mut self.batch.created_accounts,
        }
    }

    pub(crate) fn new_movement(
        &mut self,
        now: u64,
        user: Id,
        kind: MovementKind,
        amount: Money,
    ) -> Movement {
        Movement {
            id: self.products.next_id(now),
            user_id: user,
            kind,
            amount,
            card_id: Id(0),
            status: MovementStatus::Pending,
            failure: None,
            created_at: now,
            settled_at: None,
            deadline: now.saturating_add(self.products.settings.bank_timeout_ns),
            hold: None,
        }
    }
}

/// What the person paid out today in `currency`.
fn spent_today(
    settings: &crate::products::Settings,
    person: &Person,
    now: u64,
    currency: Currency,
) -> u64 {
    let today = settings.day(now);
    person
        .spending
        .iter()
        .find(|s| s.currency == currency && s.day == today)
        .map_or(0, |s| s.spent_minor)
}

/// Amounts must be above zero.
pub(crate) fn positive(amount: Money) -> Result<(), Refusal> {
    if amount.amount_minor == 0 {
        return Err(Refusal::AmountNotPositive);
    }
    Ok(())
}
