//! The REST API through real HTTP against a real server, on SQLite and on PostgreSQL. Every
//! test ends with the trial balance of the stored books.

mod app;
mod bad_input;
mod credit;
mod flows;
mod fund;
mod fuzz;
mod gateway;
mod security;
mod webhooks;

use formica_testkit::Backend;

/// Runs each test against both databases.
macro_rules! api_suite {
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

use bad_input::*;
use credit::*;
use flows::*;
use fund::*;
use gateway::*;
use security::*;
use webhooks::*;

api_suite!(
    sign_up_top_up_and_transfer_to_a_friend,
    escrow_trade_shipped_and_confirmed,
    receipt_is_confirmed_automatically_when_the_clock_passes_the_period,
    partial_refund_agreed_returns_that_part_at_once,
    refused_refund_goes_to_an_operator_who_splits_it,
    unpaid_trade_closes_after_the_timeout_and_cannot_be_paid,
    withdrawal_succeeds_or_returns_the_money_when_the_bank_fails,
    an_idempotent_retry_returns_the_saved_answer_and_moves_money_once,
    bad_input_gets_its_code_and_changes_nothing,
    five_wrong_pins_lock_the_pin,
    webhook_to_a_failing_endpoint_is_retried_until_it_recovers,
    open_trades_and_their_timers_survive_a_restart,
    verification_raises_the_daily_limit_and_survives_a_restart,
    concurrent_wrong_pins_are_all_counted,
    gateway_till_payments_refunds_and_queries,
    gateway_errors_answer_their_codes_and_change_nothing,
    a_day_of_trading_settles_payments_less_refunds_and_fees,
    notifications_reach_notify_url_signed_until_it_answers_success,
    page_pay_sends_the_browser_to_the_hosted_checkout,
    a_shop_refunds_over_rest_once_per_refund_number,
    fund_authorisations_freeze_charge_unfreeze_and_cancel_deposits,
    freezes_send_the_person_to_approve_and_notify_the_shop,
    fund_subscribe_earn_and_redeem,
    fund_endpoints_refuse_bad_input_and_change_nothing,
    a_slow_notify_url_does_not_hold_up_other_merchants,
    a_legacy_rsa_app_is_answered_and_notified_in_sha1,
    every_route_that_needs_a_caller_refuses_an_anonymous_one,
    no_route_answers_a_second_person_with_the_first_ones_objects,
    the_server_sheds_load_beyond_its_limit_and_recovers,
    a_client_too_slow_to_send_its_body_is_timed_out,
    wrong_passwords_lock_signing_in_for_a_while,
    attempts_cut_off_before_their_check_lock_signing_in_for_a_while_not_forever,
    a_request_refused_before_its_body_is_read_leaves_the_connection_usable,
    a_hanging_endpoint_does_not_hold_up_other_peoples_webhooks,
    merchant_endpoints_refuse_bad_input_and_change_nothing,
    credit_score_and_consented_checks,
    deposit_holds_waived_frozen_charged_and_a_debt_repaid,
    credit_and_hold_endpoints_refuse_bad_input_and_change_nothing,
    a_credit_line_pays_a_trade_and_is_repaid,
    operators_set_the_credit_policy_within_its_bounds,
);

#[test]
fn the_openapi_document_and_docs_page_describe_the_api() {
    let app = app::App::start(Backend::Sqlite);
    let document = app.send("GET", "/v1/openapi.json", None, None, None);
    assert_eq!(document.status, 200);
    assert_eq!(document.body["openapi"], "3.1.0");
    let paths = document.body["paths"].as_object().expect("paths");
    for path in [
        "/v1/transfers",
        "/v1/trades/{id}/pay",
        "/v1/webhook-endpoints",
        "/v1/merchants/{id}/apps",
        "/v1/apps/{app_id}/platform-key",
        "/v1/wallet/payment-code",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    assert!(document.body["x-error-codes"]["insufficient_funds"].is_number());
    let docs = app.send("GET", "/docs", None, None, None);
    assert_eq!(docs.status, 200);
    assert!(
        docs.body
            .as_str()
            .expect("html")
            .contains("/v1/trades/{id}/confirm")
    );
    app.finish();
}
