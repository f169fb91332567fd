//! The one error shape of the REST API and the one map from every error to an HTTP status and
//! a stable snake_case code:
//!
//! ```json
//! {"error": {"code": "insufficient_funds", "message": "insufficient funds", "field": null}}
//! ```
//!
//! Codes are part of the API: clients branch on them, so a code is never renamed or reused.
//! `CODES` lists them all (it is published in the OpenAPI document and checked by a test).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use formica_core::{MoneyError, Refusal};
use formica_engine::EngineError;
use formica_store::StoreError;
use serde::Serialize;

/// Every error code the API answers with, and its HTTP status.
pub const CODES: &[(&str, u16)] = &[
    ("malformed_json", 400),
    ("unknown_field", 400),
    ("missing_field", 400),
    ("invalid_field", 400),
    ("invalid_amount", 400),
    ("amount_too_precise", 400),
    ("amount_not_positive", 400),
    ("amount_too_large", 400),
    ("unknown_currency", 400),
    ("currency_mismatch", 400),
    ("invalid_cursor", 400),
    ("idempotency_key_required", 400),
    ("unauthenticated", 401),
    ("signin_failed", 401),
    ("pin_incorrect", 403),
    ("pin_not_set", 403),
    ("forbidden", 403),
    ("not_found", 404),
    ("trade_not_found", 404),
    ("card_not_found", 404),
    ("movement_not_found", 404),
    ("user_not_found", 404),
    ("endpoint_not_found", 404),
    ("payee_not_found", 404),
    ("wallet_not_found", 404),
    ("merchant_not_found", 404),
    ("app_not_found", 404),
    ("fund_not_found", 404),
    ("credit_not_found", 404),
    ("consent_not_found", 404),
    ("hold_not_found", 404),
    ("debt_not_found", 404),
    ("login_taken", 409),
    ("idempotency_key_reused", 409),
    ("duplicate_out_trade_no", 409),
    ("trade_status_invalid", 409),
    ("buyer_is_seller", 409),
    ("same_person", 409),
    ("refund_too_large", 409),
    ("discordant_repeat", 409),
    ("refunded_already", 409),
    ("cancel_too_late", 409),
    ("invalid_key", 400),
    ("fee_rate_too_high", 400),
    ("merchant_balance_too_low", 422),
    ("cutoff_invalid", 400),
    ("threshold_invalid", 400),
    ("hold_status_invalid", 409),
    ("charge_too_large", 422),
    ("repay_too_large", 422),
    ("credit_funding_insufficient", 422),
    ("due_day_invalid", 400),
    ("credit_line_exists", 409),
    ("credit_line_not_eligible", 422),
    ("credit_line_not_found", 404),
    ("credit_line_insufficient", 422),
    ("credit_line_overdue", 422),
    ("instalments_invalid", 422),
    ("credit_policy_invalid", 400),
    ("income_day_invalid", 409),
    ("accrual_in_progress", 409),
    ("units_insufficient", 422),
    ("instant_limit_exceeded", 422),
    ("payment_code_invalid", 422),
    ("body_too_large", 413),
    ("unsupported_media_type", 415),
    ("insufficient_funds", 422),
    ("daily_limit_exceeded", 422),
    ("pin_locked", 423),
    ("signin_locked", 429),
    ("busy", 503),
    ("overloaded", 503),
    ("request_timeout", 408),
    ("internal", 500),
];

/// An error as the API answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code, one of `CODES`.
    pub code: &'static str,
    /// For people: what went wrong.
    pub message: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
}

/// The JSON body of an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code (see the `x-error-codes` list in this document).
    pub code: String,
    /// For people.
    pub message: String,
    /// The request field at fault.
    pub field: Option<String>,
}

impl ApiError {
    /// An error with this code (its status comes from `CODES`).
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        let status = CODES
            .iter()
            .find(|(known, _)| *known == code)
            .map(|(_, status)| *status)
            .unwrap_or_else(|| panic!("error code {code} is listed in CODES"));
        ApiError {
            status: StatusCode::from_u16(status).expect("CODES holds valid statuses"),
            code,
            message: message.into(),
            field: None,
        }
    }

    /// What went wrong, for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error, blaming `field`.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// A resource that does not exist, or that the caller may not know exists.
    pub fn not_found(code: &'static str) -> Self {
        ApiError::new(code, "not found")
    }

    /// An internal failure: logged with its cause, answered opaquely.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        ApiError::new("internal", "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let message = refusal.to_string();
        let code = match refusal {
            Refusal::AmountNotPositive => "amount_not_positive",
            Refusal::AmountTooLarge => "amount_too_large",
            Refusal::WalletNotFound { .. } => "wallet_not_found",
            Refusal::PayeeNotFound => "payee_not_found",
            Refusal::SamePerson => "same_person",
            Refusal::InsufficientFunds => "insufficient_funds",
            Refusal::DailyLimitExceeded { .. } => "daily_limit_exceeded",
            Refusal::MovementNotFound => "movement_not_found",
            Refusal::TradeNotFound | Refusal::NotTheBuyer => "trade_not_found",
            Refusal::DuplicateOutTradeNo => "duplicate_out_trade_no",
            Refusal::TradeStatusInvalid { .. } => "trade_status_invalid",
            Refusal::BuyerIsSeller => "buyer_is_seller",
            Refusal::RefundTooLarge { .. } => "refund_too_large",
            Refusal::CurrencyMismatch { .. } => "currency_mismatch",
            Refusal::MerchantNotFound => "merchant_not_found",
            Refusal::FeeRateTooHigh => "fee_rate_too_high",
            Refusal::DiscordantRepeat => "discordant_repeat",
            Refusal::RefundedAlready => "refunded_already",
            Refusal::CancelTooLate => "cancel_too_late",
            Refusal::MerchantBalanceTooLow => "merchant_balance_too_low",
            Refusal::PaymentCodeUsed => "payment_code_invalid",
            Refusal::FundNotFound => "fund_not_found",
            Refusal::CutoffInvalid => "cutoff_invalid",
            Refusal::UnitsInsufficient { .. } => "units_insufficient",
            Refusal::InstantLimitExceeded { .. } => "instant_limit_exceeded",
            Refusal::AccrualInProgress => "accrual_in_progress",
            Refusal::IncomeDayInvalid { .. } => "income_day_invalid",
            Refusal::ConsentNotFound => "consent_not_found",
            Refusal::ThresholdInvalid => "threshold_invalid",
            Refusal::HoldNotFound => "hold_not_found",
            Refusal::HoldStatusInvalid { .. } => "hold_status_invalid",
            Refusal::ChargeTooLarge { .. } => "charge_too_large",
            Refusal::DebtNotFound => "debt_not_found",
            Refusal::RepayTooLarge { .. } => "repay_too_large",
            Refusal::CreditFundingInsufficient => "credit_funding_insufficient",
            Refusal::DueDayInvalid => "due_day_invalid",
            Refusal::CreditLineExists => "credit_line_exists",
            Refusal::CreditLineNotEligible { .. } => "credit_line_not_eligible",
            Refusal::CreditLineNotFound => "credit_line_not_found",
            Refusal::CreditLineInsufficient { .. } => "credit_line_insufficient",
            Refusal::CreditLineOverdue => "credit_line_overdue",
            Refusal::InstalmentsInvalid => "instalments_invalid",
            Refusal::CreditPolicyInvalid { .. } => "credit_policy_invalid",
            Refusal::BooksRefused { .. } => return ApiError::internal(&refusal),
        };
        let error = ApiError::new(code, message);
        if matches!(
            refusal,
            Refusal::NotTheBuyer
                | Refusal::TradeNotFound
                | Refusal::ConsentNotFound
                | Refusal::HoldNotFound
                | Refusal::DebtNotFound
        ) {
            // Never say more than "not found" about a trade the caller is not party to.
            return ApiError::not_found(code);
        }
        error
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Busy => ApiError::new("busy", "the platform is busy; try again"),
            EngineError::Rejected(formica_core::CommandError::Refused(refusal)) => refusal.into(),
            EngineError::Rejected(formica_core::CommandError::IdempotencyKeyReused) => {
                ApiError::new(
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for a different request",
                )
                .field("Idempotency-Key")
            }
            other => ApiError::internal(&other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::internal(&error)
    }
}

/// An amount that did not parse, blamed on `field`.
pub fn money_error(error: MoneyError, field: &str) -> ApiError {
    let message = error.to_string();
    let (code, field) = match error {
        MoneyError::UnknownCurrency(_) => ("unknown_currency", "currency".to_owned()),
        MoneyError::Malformed(_) => ("invalid_amount", field.to_owned()),
        MoneyError::TooPrecise { .. } => ("amount_too_precise", field.to_owned()),
        MoneyError::TooLarge(_) => ("amount_too_large", field.to_owned()),
    };
    ApiError::new(code, message).field(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_is_listed_once_with_an_error_status() {
        let mut seen = std::collections::HashSet::new();
        for (code, status) in CODES {
            assert!(seen.insert(*code), "{code} is listed twice");
            assert!(*status >= 400, "{code} has status {status}");
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code} is snake_case"
            );
        }
    }

    #[test]
    fn each_listed_code_is_used_by_the_api() {
        let sources = [
            include_str!("error.rs"),
            include_str!("auth.rs"),
            include_str!("body.rs"),
            include_str!("people.rs"),
            include_str!("wallet.rs"),
            include_str!("trade.rs"),
            include_str!("webhook.rs"),
            include_str!("idempotency.rs"),
            include_str!("page.rs"),
            include_str!("lib.rs"),
            include_str!("merchant.rs"),
            include_str!("credit.rs"),
            include_str!("hold.rs"),
            include_str!("credit_line.rs"),
        ];
        for (code, _) in CODES {
            let quoted = format!("\"{code}\"");
            let uses: usize = sources.iter().map(|s| s.matches(&quoted).count()).sum();
            // One use is the CODES entry itself.
            assert!(uses >= 2, "{code} is listed but never answered");
        }
    }
}
