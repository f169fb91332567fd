//! `formica admin`: operators' tasks on a database.

use anyhow::bail;
use formica_store::Store;

use crate::location::StoreArgs;

/// The administration tasks.
#[derive(Debug, clap::Subcommand)]
pub enum Task {
    /// Per ledger, total debits and credits from the database; exits non-zero if they differ
    /// or if any account's balances differ from the sum of its transfers.
    TrialBalance {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Prints a fresh one-time payment code for a person (what their wallet shows), for a
    /// till or a test to scan with alipay.trade.pay while the server runs. It works once,
    /// for a minute, and replaces the person's previous code.
    PaymentCode {
        #[command(flatten)]
        store: StoreArgs,
        /// The person's phone number or email.
        #[arg(long)]
        user: String,
    },
}

/// Runs one task.
pub fn run(task: Task) -> anyhow::Result<()> {
    match task {
        Task::TrialBalance { store } => trial_balance(&store),
        Task::PaymentCode { store, user } => payment_code(&store, &user),
    }
}

fn payment_code(args: &StoreArgs, login: &str) -> anyhow::Result<()> {
    let login = formica_api::normalize_login(login)
        .map_err(|error| anyhow::anyhow!("{}", error.message()))?;
    let mut store = Store::open(&args.location())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let now = u64::try_from(now)?;
    let code = formica_api::merchant::new_payment_code();
    let expires_at = now + formica_api::merchant::PAYMENT_CODE_TTL_NS;
    let issued = store.write_sql(|sql| {
        let Some(user) = formica_store::people::user_by_login(sql, &login)? else {
            return Ok(false);
        };
        formica_store::merchant::issue_payment_code(sql, user.id, &code, expires_at)?;
        Ok(true)
    })?;
    if !issued {
        bail!("no person with the login {login}");
    }
    println!("{code}");
    Ok(())
}

fn trial_balance(args: &StoreArgs) -> anyhow::Result<()> {
    let mut store = Store::open(&args.location())?;
    let balance = store.trial_balance()?;
    println!(
        "{:>8} {:>9} {:>24} {:>24} {:>24} {:>24}  ok",
        "ledger",
        "accounts",
        "debits posted",
        "credits posted",
        "debits pending",
        "credits pending"
    );
    for (ledger, totals) in &balance.ledgers {
        println!(
            "{ledger:>8} {:>9} {:>24} {:>24} {:>24} {:>24}  {}",
            totals.accounts,
            show(totals.debits_posted),
            show(totals.credits_posted),
            show(totals.debits_pending),
            show(totals.credits_pending),
            if totals.balanced() { "yes" } else { "NO" }
        );
    }
    for mismatch in &balance.mismatched_accounts {
        println!(
            "account {:032x}: stored {:?} but its transfers add up to {:?} \
             (debits pending, debits posted, credits pending, credits posted)",
            mismatch.account_id, mismatch.stored, mismatch.from_transfers
        );
    }
    if !balance.holds() {
        bail!("the trial balance does not hold");
    }
    println!("trial balance holds");
    Ok(())
}

fn show(sum: formica_ledger::Sum) -> String {
    match sum.to_u128() {
        Some(value) => value.to_string(),
        None => format!("{}*2^128+{}", sum.high, sum.low),
    }
}
