//! The one form page most actions use: a heading, fields, a submit button, the error of the
//! last attempt, and the hidden CSRF token and idempotency key.

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;

use crate::session::Ctx;
use crate::view::{self, Chrome};

/// One field.
#[derive(Clone, Debug)]
pub struct Field {
    /// The form name.
    pub name: &'static str,
    /// Its label.
    pub label: &'static str,
    /// `text`, `password`, `email`, `select`, `hidden` or `textarea`.
    pub kind: &'static str,
    /// What it holds (kept when the form comes back with an error; never a secret).
    pub value: String,
    /// A short hint after the label.
    pub hint: &'static str,
    /// Whether it must be filled.
    pub required: bool,
    /// A select's options: value and text.
    pub options: Vec<(String, String)>,
}

impl Field {
    /// A required text field.
    pub fn text(name: &'static str, label: &'static str, value: impl Into<String>) -> Field {
        Field {
            name,
            label,
            kind: "text",
            value: value.into(),
            hint: "",
            required: true,
            options: Vec::new(),
        }
    }

    /// A password or PIN field (never refilled).
    pub fn secret(name: &'static str, label: &'static str) -> Field {
        Field {
            kind: "password",
            ..Field::text(name, label, "")
        }
    }

    /// The payment PIN.
    pub fn pin() -> Field {
        Field::secret("pin", "Payment PIN").hint("6 digits")
    }

    /// A select.
    pub fn select(
        name: &'static str,
        label: &'static str,
        value: impl Into<String>,
        options: Vec<(String, String)>,
    ) -> Field {
        Field {
            kind: "select",
            options,
            ..Field::text(name, label, value)
        }
    }

    /// A value the form carries unseen.
    pub fn hidden(name: &'static str, value: impl Into<String>) -> Field {
        Field {
            kind: "hidden",
            ..Field::text(name, "", value)
        }
    }

    /// With a hint.
    pub fn hint(mut self, hint: &'static str) -> Field {
        self.hint = hint;
        self
    }

    /// Not required.
    pub fn optional(mut self) -> Field {
        self.required = false;
        self
    }
}

/// A form page.
#[derive(Template)]
#[template(path = "wallet/form.html")]
pub struct FormPage {
    /// The frame.
    pub chrome: Chrome,
    /// The heading.
    pub heading: String,
    /// A sentence under it.
    pub lead: Option<String>,
    /// Where it posts.
    pub action: String,
    /// The fields.
    pub fields: Vec<Field>,
    /// The button's text.
    pub submit: String,
    /// The last attempt's error.
    pub error: Option<String>,
    /// The idempotency key of this rendering.
    pub key: String,
    /// Fixed HTML after the form (a link).
    pub after: Option<&'static str>,
}

impl FormPage {
    /// A form in `area` posting to `action`.
    pub fn new(
        ctx: &Ctx,
        area: &'static str,
        heading: impl Into<String>,
        action: impl Into<String>,
        submit: impl Into<String>,
        fields: Vec<Field>,
    ) -> FormPage {
        let heading = heading.into();
        FormPage {
            chrome: Chrome::new(ctx, area, heading.clone()),
            heading,
            lead: None,
            action: action.into(),
            fields,
            submit: submit.into(),
            error: None,
            key: view::form_key(),
            after: None,
        }
    }

    /// With a sentence under the heading.
    pub fn lead(mut self, lead: impl Into<String>) -> FormPage {
        self.lead = Some(lead.into());
        self
    }

    /// With fixed HTML after the form.
    pub fn after(mut self, after: &'static str) -> FormPage {
        self.after = Some(after);
        self
    }

    /// Shown, with `error` from the last attempt. A form shown again gets a fresh idempotency
    /// key: the attempt that failed may have been recorded with its answer, and the retry is
    /// a new request (a double click on one rendering is what the key guards against).
    pub fn show(mut self, ctx: &Ctx, error: Option<(StatusCode, String)>) -> Response {
        match error {
            Some((status, error)) => {
                self.error = Some(error);
                view::render(ctx, status, &self)
            }
            None => view::render(ctx, StatusCode::OK, &self),
        }
    }
}
