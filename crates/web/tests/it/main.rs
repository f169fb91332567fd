//! The pages against a real server over real HTTP, on SQLite and on PostgreSQL: what they
//! refuse (a plain form client), and what people do on them (headless Chromium through
//! chromedriver; skipped where it is not installed unless `FORMICA_REQUIRE_BROWSER=1`). Every
//! test ends with the trial balance of the stored books.

mod app;
mod browser;
mod flows;
mod pages;

use flows::*;
use pages::*;

/// Runs each test against both databases.
macro_rules! web_suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $test() { super::$test(formica_testkit::Backend::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $test() {
                if formica_testkit::Backend::Postgres.available() {
                    super::$test(formica_testkit::Backend::Postgres)
                }
            })*
        }
    };
}

web_suite!(
    an_operator_page_is_refused_to_a_person,
    a_form_without_its_csrf_token_is_refused_and_changes_nothing,
    another_persons_trade_or_shop_shows_not_found,
    pages_carry_their_protections,
    hosted_checkout_pays_and_returns_to_the_shop_signed,
    a_shop_ships_its_escrow_trades_and_reshows_its_qr_codes,
    qr_codes_carry_the_configured_public_url,
    sign_up_top_up_and_pay_a_shop_qr,
    escrow_purchase_through_to_confirmed_receipt,
    refund_from_the_merchant_console,
    dispute_decided_in_the_operator_console,
    hosted_checkout_from_a_page_pay_link_back_to_return_url,
    the_pocket_fund_in_the_wallet_and_the_operator_console,
    the_credit_score_and_the_shops_that_may_check_it,
    a_deposit_held_charged_and_a_debt_repaid_on_the_pages,
    an_online_deposit_approved_on_the_platforms_page,
    a_credit_line_opened_used_at_checkout_and_repaid_on_the_pages,
);
