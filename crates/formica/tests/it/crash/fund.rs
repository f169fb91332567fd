//! The crash test of the pocket fund's daily earnings: `formica crash-load --fund` posts a
//! day's income and credits it to every holder in small chunks, day after day, and is
//! killed with SIGKILL at random moments, most of them in the middle of a day's accrual.
//! After every kill the books must show each holder credited exactly once for every day
//! (and for the day half done, exactly the holders up to the stored cursor), every
//! acknowledged income stored, the units outstanding equal to the fund's money, and a
//! trial balance. A last run must finish the accrual the kills interrupted.

use formica_core::fund::{fund_account, issuer_account, units_account};
use formica_core::{Currency, Id};

use super::*;

// What `crates/formica/src/crash_load.rs` sets up: the test reads the books it leaves.
/// Holders: people 2..=HOLDERS+1.
const HOLDERS: u64 = 400;
/// The Monday the holders bought; their units earn from Tuesday.
const MONDAY: i64 = 20_836;
/// Units each bought, in fen (1,000.00).
const UNITS: u128 = 100_000;
/// What each earns a day at the posted income (1.0000 per 10,000 units): 0.10.
const DAILY: u128 = 10;

#[test]
fn sigkill_in_the_middle_of_a_days_accrual_credits_each_holder_once_on_sqlite() {
    let dir = KeptOnFailure::Sqlite(Some(
        tempfile::TempDir::new().expect("a temporary directory for the books"),
    ));
    fund_crash_test("sqlite", &dir.location());
}

#[test]
fn sigkill_in_the_middle_of_a_days_accrual_credits_each_holder_once_on_postgres() {
    let Some(url) = postgres_url() else {
        return;
    };
    let database = TemporaryDatabase::create(&url, "formica_crash_fund")
        .expect("DATABASE_URL names a reachable PostgreSQL server");
    let database = KeptOnFailure::Postgres(Some(database));
    fund_crash_test("postgres", &database.location());
}

fn fund_crash_test(database: &str, location: &Location) {
    let kills = kills();
    let seed = seed();
    eprintln!(
        "fund crash test on {database}: {kills} kill points, seed {seed} \
         (replay with FORMICA_CRASH_SEED={seed})"
    );
    let setup = formica()
        .args(["crash-load", "--fund", "--setup"])
        .args(store_args(location))
        .output()
        .expect("the formica binary can be run");
    assert!(
        setup.status.success(),
        "crash-load --fund --setup failed ({}):\n{}",
        setup.status,
        String::from_utf8_lossy(&setup.stderr)
    );
    let mut rng = SmallRng::seed_from_u64(seed);
    let load = ["--fund".to_owned()];
    let mut posted = Vec::new();
    let mut halfway = 0;
    for kill in 1..=kills {
        let moment = Moment::pick(&mut rng);
        let context = format!("{database}, kill {kill} of {kills}, seed {seed}, {moment}");
        let run = run_and_kill(location, &load, moment)
            .unwrap_or_else(|problem| panic!("{context}: {problem}"));
        posted.extend_from_slice(&run.incomes);
        let state = check_fund(location, &posted).unwrap_or_else(|problem| {
            panic!("{context}: {problem}\nthe child's stderr:\n{}", run.stderr)
        });
        check_admin_trial_balance(location)
            .unwrap_or_else(|problem| panic!("{context}: {problem}"));
        halfway += usize::from(state.halfway);
        eprintln!(
            "{database} fund kill {kill:>3}/{kills}: {moment:<20} {} incomes posted, \
             credited through day {}{}",
            run.incomes.len(),
            state.through,
            if state.halfway {
                ", the next day half credited"
            } else {
                ""
            }
        );
    }
    // A last run finishes what the kills left half done, each holder still credited once.
    let last = posted.iter().copied().max().unwrap_or(MONDAY - 1);
    let mut finished = false;
    for _ in 0..10 {
        let run = run_and_kill(
            location,
            &load,
            Moment::AfterReady(Duration::from_millis(500)),
        )
        .unwrap_or_else(|problem| panic!("{database}, the last run: {problem}"));
        posted.extend_from_slice(&run.incomes);
        check_fund(location, &posted).unwrap_or_else(|problem| {
            panic!("{database}, the last run: {problem}\n{}", run.stderr)
        });
        if run.accrued.is_some_and(|day| day >= last) {
            finished = true;
            break;
        }
    }
    assert!(
        finished,
        "{database}: the accrual of day {last} was never finished"
    );
    eprintln!(
        "fund crash test on {database}: {kills} kills ({halfway} in the middle of a day's \
         accrual), {} incomes posted, every holder credited once a day",
        posted.len()
    );
}

/// Where the fund stood at a check.
struct FundState {
    /// The last day every holder was credited for.
    through: i64,
    /// Whether the next day's income was being credited (and had reached some holders).
    halfway: bool,
}

/// Opens the books directly and checks the fund against the incomes acknowledged so far.
fn check_fund(location: &Location, posted: &[i64]) -> Result<FundState, String> {
    let mut store = Store::open(location).map_err(|error| format!("open the books: {error}"))?;
    let fund = store
        .read_sql(formica_store::fund::funds)
        .map_err(|error| format!("read the funds: {error}"))?
        .into_iter()
        .next()
        .ok_or("the setup made no fund")?;
    let through = fund.accrued_through;
    let open_day = fund.accrual.as_ref().map(|a| a.day);
    if let Some(lost) = posted
        .iter()
        .find(|&&day| day > through && Some(day) != open_day)
    {
        return Err(format!(
            "the income of day {lost} was acknowledged but is not stored (credited through \
             {through}, accrual {:?})",
            fund.accrual
        ));
    }
    // The holders the day in progress has reached (Monday's income earns nobody anything).
    let reached = fund
        .accrual
        .as_ref()
        .filter(|a| a.day > MONDAY)
        .and_then(|a| a.after);
    let holders: Vec<Id> = (2..HOLDERS + 2).map(Id).collect();
    let ids: Vec<u128> = holders.iter().map(|h| units_account(*h, &fund)).collect();
    let accounts = store
        .accounts(&ids)
        .map_err(|error| format!("read the holders' units: {error}"))?;
    let days = u128::try_from(through - MONDAY).unwrap_or(0);
    for (holder, account) in holders.iter().zip(accounts) {
        let account = account.ok_or_else(|| format!("holder {} has no units account", holder.0))?;
        // Units bought and not yet confirmed are pending; they are held all the same.
        let units = account.credits_posted + account.credits_pending - account.debits_posted;
        let today = if reached.is_some_and(|after| *holder <= after) {
            DAILY
        } else {
            0
        };
        let expected = UNITS + DAILY * days + today;
        if units != expected {
            return Err(format!(
                "holder {} holds {units} units, not {expected}: credited through day \
                 {through}, accrual {:?}",
                holder.0, fund.accrual
            ));
        }
    }
    let books = store
        .accounts(&[issuer_account(&fund), fund_account(fund.id, Currency::CNY)])
        .map_err(|error| format!("read the fund's accounts: {error}"))?;
    let (Some(issuer), Some(money)) = (books[0], books[1]) else {
        return Err("the fund's accounts are missing".to_owned());
    };
    let outstanding = issuer.debits_posted + issuer.debits_pending - issuer.credits_posted;
    if i128::try_from(outstanding).ok() != Some(money.available()) {
        return Err(format!(
            "{outstanding} units outstanding against {} in the fund's money",
            money.available()
        ));
    }
    Ok(FundState {
        through,
        halfway: reached.is_some(),
    })
}
