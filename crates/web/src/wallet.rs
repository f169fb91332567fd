//! The wallet, phone-sized: sign up and in, the home screen (balance, eight actions, recent
//! bills), all services, the payment PIN, cards, top-up and withdrawal, transfers, scan to pay,
//! the payment code and the bill list with its spending chart. Every action calls the REST
//! API's own handler, so a page and an API call keep the same rules.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use formica_api::AppState;
use formica_api::auth::Caller;
use formica_api::body::Body;
use formica_api::wallet::{AmountInput, Entry, PersonRef};
use formica_core::wallet::wallet_account;
use formica_core::{Currency, Money};
use serde::Deserialize;

use crate::form::{Field, FormPage};
use crate::session::{Ctx, Posted, Signed, keyed};
use crate::svg;
use crate::view::{self, Chrome};

/// `?next=` and `?done=`.
#[derive(Debug, Default, Deserialize)]
pub struct Back {
    next: Option<String>,
    done: Option<String>,
}

/// Where to go after signing in: a path on this server, else the wallet. Browsers drop tabs
/// and newlines from a URL and read `\` as `/`, so `/\t/evil.example` or `/\evil.example`
/// would leave the site: a path with either, or starting with two slashes, is refused.
fn safe_next(next: Option<&str>) -> String {
    let local = |next: &str| {
        next.starts_with('/')
            && !matches!(next.as_bytes().get(1), Some(b'/' | b'\\'))
            && !next.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'\\')
    };
    match next {
        Some(next) if local(next) => next.to_owned(),
        _ => "/wallet".to_owned(),
    }
}

/// `/`: the wallet, or the sign-in page.
pub async fn start(ctx: Ctx) -> Response {
    if ctx.user.is_some() {
        view::done("/wallet")
    } else {
        view::done("/sign-in")
    }
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    next: String,
    login: String,
    error: Option<String>,
}

/// `GET /sign-in`.
pub async fn sign_in_page(ctx: Ctx, Query(back): Query<Back>) -> Response {
    let page = SignInPage {
        chrome: Chrome::new(&ctx, "wallet", "Sign in"),
        next: safe_next(back.next.as_deref()),
        login: String::new(),
        error: None,
    };
    view::render(&ctx, StatusCode::OK, &page)
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    login: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// Opens a session for `login` and sends the browser to `next` with its cookie.
async fn open_session(
    state: &AppState,
    ctx: &Ctx,
    login: &str,
    password: &str,
    next: &str,
) -> Result<Response, formica_api::ApiError> {
    let body = Body {
        value: formica_api::people::SignIn {
            login: login.to_owned(),
            password: password.to_owned(),
        },
        digest: String::new(),
    };
    let (_, session) = formica_api::people::sign_in(State(state.clone()), body).await?;
    let mut response = view::done(next);
    response.headers_mut().append(
        header::SET_COOKIE,
        ctx.session_cookie(Some(&session.0.token)),
    );
    Ok(response)
}

/// `POST /sign-in`.
pub async fn sign_in(State(state): State<AppState>, form: Posted<SignInForm>) -> Response {
    let Posted { ctx, value, .. } = form;
    let next = safe_next(Some(&value.next));
    match open_session(&state, &ctx, &value.login, &value.password, &next).await {
        Ok(response) => response,
        Err(error) => {
            let page = SignInPage {
                chrome: Chrome::new(&ctx, "wallet", "Sign in"),
                next,
                login: value.login,
                error: Some(view::say(&error)),
            };
            view::render(&ctx, error.status, &page)
        }
    }
}

#[derive(Template)]
#[template(path = "sign_up.html")]
struct SignUpPage {
    chrome: Chrome,
    next: String,
    login: String,
    display_name: String,
    error: Option<String>,
}

/// `GET /sign-up`.
pub async fn sign_up_page(ctx: Ctx, Query(back): Query<Back>) -> Response {
    let page = SignUpPage {
        chrome: Chrome::new(&ctx, "wallet", "Create your account"),
        next: safe_next(back.next.as_deref()),
        login: String::new(),
        display_name: String::new(),
        error: None,
    };
    view::render(&ctx, StatusCode::OK, &page)
}

/// The sign-up form.
#[derive(Debug, Deserialize)]
pub struct SignUpForm {
    login: String,
    password: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    next: String,
}

/// `POST /sign-up`: the account, then a session, then the PIN page.
pub async fn sign_up(State(state): State<AppState>, form: Posted<SignUpForm>) -> Response {
    let Posted { ctx, value, .. } = form;
    let next = safe_next(Some(&value.next));
    let display_name = Some(value.display_name.trim().to_owned()).filter(|n| !n.is_empty());
    let body = Body {
        value: formica_api::people::SignUp {
            login: value.login.clone(),
            password: value.password.clone(),
            display_name,
        },
        digest: String::new(),
    };
    let signed = match formica_api::people::sign_up(State(state.clone()), body).await {
        Ok(_) => {
            let then = format!(
                "/wallet/pin?done=signed-up&next={}",
                form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            );
            open_session(&state, &ctx, &value.login, &value.password, &then).await
        }
        Err(error) => Err(error),
    };
    signed.unwrap_or_else(|error| {
        let page = SignUpPage {
            chrome: Chrome::new(&ctx, "wallet", "Create your account"),
            next,
            login: value.login,
            display_name: value.display_name,
            error: Some(view::say(&error)),
        };
        view::render(&ctx, error.status, &page)
    })
}

/// `POST /sign-out`: the session ends here and in the store.
pub async fn sign_out(State(state): State<AppState>, form: Posted<Nothing>) -> Response {
    if let Some(hash) = form.ctx.session_hash.clone()
        && let Err(error) = state
            .pool()
            .write(move |sql| formica_store::people::delete_session(sql, &hash))
            .await
    {
        return view::failure(&error);
    }
    let mut response = view::done("/sign-in");
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, form.ctx.session_cookie(None));
    headers.append(header::SET_COOKIE, form.ctx.new_csrf_cookie());
    response
}

/// A form with no fields of its own.
#[derive(Debug, Deserialize)]
pub struct Nothing {}

/// A balance as the home screen shows it.
struct BalanceLine {
    currency: String,
    available: String,
    held: String,
    incoming: String,
}

/// One of the home screen's actions.
struct Action {
    name: &'static str,
    /// The SVG path of its icon (24 × 24, stroked).
    icon: &'static str,
    href: &'static str,
}

/// At most eight: the rest are under "All services", so new products never crowd the home
/// screen.
const HOME_ACTIONS: [Action; 8] = [
    Action {
        name: "Scan",
        icon: r#"<path d="M3 8V3h5M16 3h5v5M21 16v5h-5M8 21H3v-5M7 12h10"/>"#,
        href: "/wallet/scan",
    },
    Action {
        name: "Pay code",
        icon: r#"<path d="M4 5v14M7 5v14M11 5v14M14 5v14M17 5v14M20 5v14"/>"#,
        href: "/wallet/pay-code",
    },
    Action {
        name: "Transfer",
        icon: r#"<path d="M4 8h15l-4-4M20 16H5l4 4"/>"#,
        href: "/wallet/transfer",
    },
    Action {
        name: "Top up",
        icon: r#"<path d="M12 5v14M5 12h14"/>"#,
        href: "/wallet/top-up",
    },
    Action {
        name: "Withdraw",
        icon: r#"<path d="M12 4v11M8 11l4 4 4-4M5 20h14"/>"#,
        href: "/wallet/withdraw",
    },
    Action {
        name: "Bills",
        icon: r#"<path d="M6 5h12v15l-3-2-3 2-3-2-3 2zM9 9h6M9 13h6"/>"#,
        href: "/wallet/bills",
    },
    Action {
        name: "Trades",
        icon: r#"<path d="M4 7l8-4 8 4v10l-8 4-8-4zM4 7l8 4 8-4M12 11v10"/>"#,
        href: "/wallet/trades",
    },
    Action {
        name: "All services",
        icon: r#"<path d="M5 12h.01M12 12h.01M19 12h.01"/>"#,
        href: "/wallet/services",
    },
];

/// A bill line as the wallet shows it.
pub struct EntryLine {
    label: String,
    at: String,
    status: String,
    signed: String,
    incoming: bool,
}

fn entry_line(entry: &Entry, offset: i64) -> EntryLine {
    let label = match entry.kind.as_str() {
        "top_up" => "Top-up",
        "withdrawal" => "Withdrawal",
        "transfer" if entry.direction == "in" => "Transfer received",
        "transfer" => "Transfer sent",
        "trade_payment" if entry.direction == "in" => "Sale",
        "trade_payment" => "Payment",
        "refund" => "Refund",
        "payout" => "Payout from a shop",
        _ => "Other",
    };
    let status = match entry.status.as_str() {
        "held" => "held",
        "released" => "released",
        "returned" => "returned",
        _ => "done",
    };
    let incoming = entry.direction == "in";
    EntryLine {
        label: label.to_owned(),
        at: view::time(entry.at, offset),
        status: status.to_owned(),
        signed: format!(
            "{}{}",
            if incoming { "+" } else { "−" },
            view::money(&entry.amount)
        ),
        incoming,
    }
}

#[derive(Template)]
#[template(path = "wallet/home.html")]
struct Home {
    chrome: Chrome,
    balances: Vec<BalanceLine>,
    pin_set: bool,
    actions: &'static [Action],
    entries: Vec<EntryLine>,
}

/// The wallet's balances, CNY first even when empty.
async fn balances(state: &AppState, caller: &Caller) -> Result<Vec<BalanceLine>, Response> {
    let wallet = formica_api::wallet::balances(State(state.clone()), caller.clone())
        .await
        .map_err(|error| view::failure(&error.message()))?
        .0;
    let mut lines: Vec<BalanceLine> = wallet
        .balances
        .iter()
        .map(|b| BalanceLine {
            currency: b.currency.code().to_owned(),
            available: view::money(&b.available),
            held: nonzero(&b.held),
            incoming: nonzero(&b.incoming),
        })
        .collect();
    if lines.is_empty() {
        let cny = Currency::from_code("CNY").expect("CNY is a currency");
        lines.push(BalanceLine {
            currency: "CNY".to_owned(),
            available: view::money(&Money::new(0, cny)),
            held: String::new(),
            incoming: String::new(),
        });
    }
    Ok(lines)
}

fn nonzero(money: &Money) -> String {
    if money.amount_minor == 0 {
        String::new()
    } else {
        view::money(money)
    }
}

/// The wallet's latest bill lines in `currency`.
async fn recent(
    state: &AppState,
    caller: &Caller,
    currency: Currency,
    limit: u32,
    before: Option<u64>,
) -> Result<Vec<Entry>, Response> {
    let account = wallet_account(caller.0.id, currency);
    let transfers = state
        .pool()
        .with_store(move |store| {
            store.history(&formica_store::HistoryQuery {
                account_id: account,
                from: None,
                before,
                limit,
            })
        })
        .await
        .map_err(|error| view::failure(&error))?;
    Ok(transfers
        .iter()
        .map(|t| formica_api::wallet::entry(t, account, currency))
        .collect())
}

/// `GET /wallet`.
pub async fn home(
    State(state): State<AppState>,
    Signed(ctx, caller): Signed,
    Query(back): Query<Back>,
) -> Response {
    let balances = match balances(&state, &caller).await {
        Ok(balances) => balances,
        Err(response) => return response,
    };
    let cny = Currency::from_code("CNY").expect("CNY is a currency");
    let offset = state.engine().settings().day_offset_seconds;
    let entries = match recent(&state, &caller, cny, 5, None).await {
        Ok(entries) => entries.iter().map(|e| entry_line(e, offset)).collect(),
        Err(response) => return response,
    };
    let page = Home {
        chrome: Chrome::new(&ctx, "wallet", "Wallet").notice(back.done.as_deref()),
        balances,
        pin_set: caller.0.pin_hash.is_some(),
        actions: &HOME_ACTIONS,
        entries,
    };
    view::render(&ctx, StatusCode::OK, &page)
}

/// A service in the list.
struct Service {
    name: &'static str,
    about: &'static str,
    href: &'static str,
    keywords: String,
}

/// Every service, in one list a search narrows (the home screen shows eight).
fn services(operator: bool) -> Vec<Service> {
    let mut list = vec![
        (
            "Scan to pay",
            "Pay a shop's QR code or link",
            "/wallet/scan",
            "qr merchant shop",
        ),
        (
            "Payment code",
            "Let a till scan you",
            "/wallet/pay-code",
            "barcode qr till",
        ),
        (
            "Transfer",
            "Send money to a friend",
            "/wallet/transfer",
            "send friend pay person",
        ),
        (
            "Top up",
            "Add money from a bank card",
            "/wallet/top-up",
            "add deposit card bank",
        ),
        (
            "Withdraw",
            "Move money to a bank card",
            "/wallet/withdraw",
            "cash out card bank",
        ),
        (
            "Bills",
            "Everything in and out, by month",
            "/wallet/bills",
            "history statement spending",
        ),
        (
            "Pocket fund",
            "Earn every day on spare money; take it out at once",
            "/wallet/funds",
            "fund yield interest savings earn yu'e bao",
        ),
        (
            "Credit score",
            "Your score, what makes it, and the shops that may check it",
            "/wallet/credit",
            "credit score sesame deposit free trust",
        ),
        (
            "Credit line",
            "Pay now, repay next month or in instalments",
            "/wallet/credit-line",
            "credit line huabei pay later instalments bill statement repay",
        ),
        (
            "Deposits",
            "Deposits shops hold for rentals, and what you owe",
            "/wallet/holds",
            "deposit rent rental free hold debt repay",
        ),
        (
            "Trades",
            "Escrow purchases and sales",
            "/wallet/trades",
            "escrow buy sell dispute refund",
        ),
        (
            "Sell with escrow",
            "Offer a trade; you are paid when the buyer confirms",
            "/wallet/trades/new",
            "escrow sell offer",
        ),
        (
            "Bank cards",
            "Link a card for top-ups and withdrawals",
            "/wallet/cards",
            "card bank link",
        ),
        (
            "Payment PIN",
            "Set or change the 6-digit PIN",
            "/wallet/pin",
            "pin password security",
        ),
        (
            "Shops",
            "Open a shop, take payments, see settlements",
            "/merchant",
            "merchant business console qr gateway",
        ),
        (
            "Developer API",
            "The REST API's reference",
            "/docs",
            "api developer openapi",
        ),
    ];
    if operator {
        list.push((
            "Operator console",
            "Disputes, lookups, the trial balance, engine health",
            "/operator",
            "operator admin dispute",
        ));
    }
    list.into_iter()
        .map(|(name, about, href, words)| Service {
            name,
            about,
            href,
            keywords: format!("{name} {about} {words}").to_lowercase(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "wallet/services.html")]
struct Services {
    chrome: Chrome,
    q: String,
    services: Vec<Service>,
}

/// `?q=`.
#[derive(Debug, Deserialize)]
pub struct Search {
    #[serde(default)]
    q: String,
}

/// `GET /wallet/services`.
pub async fn all_services(Signed(ctx, _): Signed, Query(search): Query<Search>) -> Response {
    let q = search.q.trim().to_lowercase();
    let services = services(ctx.operator())
        .into_iter()
        .filter(|s| q.is_empty() || s.keywords.contains(&q))
        .collect();
    let page = Services {
        chrome: Chrome::new(&ctx, "wallet", "All services"),
        q: search.q,
        services,
    };
    view::render(&ctx, StatusCode::OK, &page)
}

fn pin_form(ctx: &Ctx, next: &str) -> FormPage {
    FormPage::new(
        ctx,
        "wallet",
        "Payment PIN",
        "/wallet/pin",
        "Set PIN",
        vec![
            Field::secret("pin", "New payment PIN").hint("6 digits"),
            Field::secret("password", "Your password"),
            Field::hidden("next", next),
        ],
    )
    .lead("The PIN confirms every payment. Nobody from Formica will ever ask for it.")
}

/// `GET /wallet/pin`.
pub async fn pin_page(Signed(ctx, _): Signed, Query(back): Query<Back>) -> Response {
    let mut page = pin_form(&ctx, &safe_next(back.next.as_deref()));
    page.chrome = page.chrome.notice(back.done.as_deref());
    page.show(&ctx, None)
}

/// The PIN form.
#[derive(Debug, Deserialize)]
pub struct PinForm {
    pin: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// `POST /wallet/pin`.
pub async fn set_pin(State(state): State<AppState>, form: Posted<PinForm>) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in("/wallet/pin");
    };
    let next = safe_next(Some(&value.next));
    let body = Body {
        value: formica_api::people::SetPin {
            pin: value.pin,
            password: value.password,
        },
        digest,
    };
    match formica_api::people::set_pin(State(state), caller, body).await {
        Ok(_) if next == "/wallet" => view::done("/wallet?done=pin"),
        Ok(_) => view::done(&next),
        Err(error) => pin_form(&ctx, &next).show(&ctx, Some((error.status, view::say(&error)))),
    }
}

async fn card_options(state: &AppState, caller: &Caller) -> Vec<(String, String)> {
    formica_api::wallet::cards(State(state.clone()), caller.clone())
        .await
        .map(|cards| {
            cards
                .0
                .iter()
                .map(|c| (c.id.to_string(), format!("{} ·· {}", c.bank, c.last4)))
                .collect()
        })
        .unwrap_or_default()
}

fn card_form(ctx: &Ctx, cards: &[(String, String)]) -> FormPage {
    let lead = if cards.is_empty() {
        "No card linked yet.".to_owned()
    } else {
        format!(
            "Linked: {}.",
            cards
                .iter()
                .map(|(_, name)| name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    FormPage::new(
        ctx,
        "wallet",
        "Bank cards",
        "/wallet/cards",
        "Link card",
        vec![
            Field::text("bank", "Bank", ""),
            Field::text("number", "Card number", "").hint("12 to 19 digits"),
            Field::text("holder", "Name on the card", ""),
        ],
    )
    .lead(lead)
}

/// `GET /wallet/cards`.
pub async fn cards_page(State(state): State<AppState>, Signed(ctx, caller): Signed) -> Response {
    let cards = card_options(&state, &caller).await;
    card_form(&ctx, &cards).show(&ctx, None)
}

/// The card form.
#[derive(Debug, Deserialize)]
pub struct CardForm {
    bank: String,
    number: String,
    holder: String,
}

/// `POST /wallet/cards`.
pub async fn add_card(State(state): State<AppState>, form: Posted<CardForm>) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in("/wallet/cards");
    };
    let number: String = value
        .number
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let body = Body {
        value: formica_api::wallet::NewCard {
            bank: value.bank.trim().to_owned(),
            number,
            holder: value.holder.trim().to_owned(),
        },
        digest,
    };
    match formica_api::wallet::add_card(State(state.clone()), caller.clone(), body).await {
        Ok(_) => view::done("/wallet?done=card"),
        Err(error) => {
            let cards = card_options(&state, &caller).await;
            card_form(&ctx, &cards).show(&ctx, Some((error.status, view::say(&error))))
        }
    }
}

fn currency_options() -> Vec<(String, String)> {
    Currency::all()
        .iter()
        .map(|c| (c.code().to_owned(), format!("{} {}", c.code(), c.symbol())))
        .collect()
}

fn bank_form(ctx: &Ctx, top_up: bool, cards: Vec<(String, String)>) -> FormPage {
    let (heading, action, submit) = if top_up {
        ("Top up", "/wallet/top-up", "Top up")
    } else {
        ("Withdraw", "/wallet/withdraw", "Withdraw")
    };
    let page = FormPage::new(
        ctx,
        "wallet",
        heading,
        action,
        submit,
        vec![
            Field::select("card_id", "Card", "", cards),
            Field::text("amount", "Amount", "").hint("for example 100.00"),
            Field::select("currency", "Currency", "CNY", currency_options()),
            Field::pin(),
        ],
    );
    page.after("<a href=\"/wallet/cards\">Link another card</a>")
}

/// `GET /wallet/top-up` and `/wallet/withdraw`.
async fn bank_page(state: &AppState, ctx: &Ctx, caller: &Caller, top_up: bool) -> Response {
    let cards = card_options(state, caller).await;
    if cards.is_empty() {
        return view::done("/wallet/cards");
    }
    bank_form(ctx, top_up, cards).show(ctx, None)
}

/// `GET /wallet/top-up`.
pub async fn top_up_page(State(state): State<AppState>, Signed(ctx, caller): Signed) -> Response {
    bank_page(&state, &ctx, &caller, true).await
}

/// `GET /wallet/withdraw`.
pub async fn withdraw_page(State(state): State<AppState>, Signed(ctx, caller): Signed) -> Response {
    bank_page(&state, &ctx, &caller, false).await
}

/// The top-up and withdrawal form.
#[derive(Debug, Deserialize)]
pub struct BankForm {
    key: String,
    card_id: String,
    amount: String,
    currency: String,
    pin: String,
}

async fn bank_move(state: AppState, form: Posted<BankForm>, top_up: bool) -> Response {
    let Posted { ctx, value, digest } = form;
    let back = if top_up {
        "/wallet/top-up"
    } else {
        "/wallet/withdraw"
    };
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in(back);
    };
    let shown_again = |error: formica_api::ApiError, cards| {
        bank_form(&ctx, top_up, cards).show(&ctx, Some((error.status, view::say(&error))))
    };
    let Ok(card_id) = value.card_id.parse() else {
        let cards = card_options(&state, &caller).await;
        return shown_again(
            formica_api::ApiError::not_found("card_not_found").field("card_id"),
            cards,
        );
    };
    let body = Body {
        value: formica_api::wallet::BankMove {
            card_id,
            amount: AmountInput {
                amount: value.amount.trim().to_owned(),
                currency: value.currency,
            },
            pin: value.pin,
        },
        digest,
    };
    let (headers, st) = (keyed(&value.key), State(state.clone()));
    let done = if top_up {
        formica_api::wallet::top_up(st, caller.clone(), headers, body).await
    } else {
        formica_api::wallet::withdraw(st, caller.clone(), headers, body).await
    };
    match done {
        Ok(_) if top_up => view::done("/wallet?done=top-up"),
        Ok(_) => view::done("/wallet?done=withdrawal"),
        Err(error) => {
            let cards = card_options(&state, &caller).await;
            shown_again(error, cards)
        }
    }
}

/// `POST /wallet/top-up`.
pub async fn top_up(State(state): State<AppState>, form: Posted<BankForm>) -> Response {
    bank_move(state, form, true).await
}

/// `POST /wallet/withdraw`.
pub async fn withdraw(State(state): State<AppState>, form: Posted<BankForm>) -> Response {
    bank_move(state, form, false).await
}

fn transfer_form(ctx: &Ctx, to: &str, amount: &str, currency: &str, note: &str) -> FormPage {
    FormPage::new(
        ctx,
        "wallet",
        "Transfer",
        "/wallet/transfer",
        "Send",
        vec![
            Field::text("to", "To", to).hint("their phone or email"),
            Field::text("amount", "Amount", amount),
            Field::select("currency", "Currency", currency, currency_options()),
            Field::text("note", "Note", note).optional(),
            Field::pin(),
        ],
    )
    .lead("Arrives at once. Daily limits depend on your identity level.")
}

/// `GET /wallet/transfer`.
pub async fn transfer_page(Signed(ctx, _): Signed) -> Response {
    transfer_form(&ctx, "", "", "CNY", "").show(&ctx, None)
}

/// The transfer form.
#[derive(Debug, Deserialize)]
pub struct TransferForm {
    key: String,
    to: String,
    amount: String,
    currency: String,
    #[serde(default)]
    note: String,
    pin: String,
}

/// `POST /wallet/transfer`.
pub async fn transfer(State(state): State<AppState>, form: Posted<TransferForm>) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in("/wallet/transfer");
    };
    let body = Body {
        value: formica_api::wallet::NewTransfer {
            to: PersonRef {
                user_id: None,
                login: Some(value.to.trim().to_owned()),
            },
            amount: AmountInput {
                amount: value.amount.trim().to_owned(),
                currency: value.currency.clone(),
            },
            note: value.note.trim().to_owned(),
            pin: value.pin,
        },
        digest,
    };
    match formica_api::wallet::transfer(State(state), caller, keyed(&value.key), body).await {
        Ok(_) => view::done("/wallet?done=transfer"),
        Err(error) => transfer_form(&ctx, &value.to, &value.amount, &value.currency, &value.note)
            .show(&ctx, Some((error.status, view::say(&error)))),
    }
}

fn scan_form(ctx: &Ctx, code: &str) -> FormPage {
    FormPage::new(
        ctx,
        "wallet",
        "Scan to pay",
        "/wallet/scan",
        "Open",
        vec![Field::text("code", "Shop's QR link or code", code)],
    )
    .lead(
        "Point the phone's camera at the shop's QR code, or paste what it says here: a link \
         like https://…/qr/… or /pay/…, or the trade number.",
    )
}

/// `GET /wallet/scan`.
pub async fn scan_page(Signed(ctx, _): Signed) -> Response {
    scan_form(&ctx, "").show(&ctx, None)
}

/// The scan form.
#[derive(Debug, Deserialize)]
pub struct ScanForm {
    code: String,
}

/// Where a scanned code leads: a trade's checkout or a shop's counter page, on this server.
pub fn scanned_path(code: &str) -> Option<String> {
    let code = code.trim();
    let path = match code.find("://") {
        Some(at) => {
            let rest = &code[at + 3..];
            &rest[rest.find('/')?..]
        }
        None => code,
    };
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let id_ok = |id: &str| id.parse::<formica_core::Id>().is_ok();
    match segments.as_slice() {
        ["qr" | "checkout", id] if id_ok(id) => Some(format!("/checkout/{id}")),
        ["pay", id] if id_ok(id) => Some(format!("/pay/{id}")),
        [id] if id_ok(id) => Some(format!("/checkout/{id}")),
        _ => None,
    }
}

/// `POST /wallet/scan`.
pub async fn scan(form: Posted<ScanForm>) -> Response {
    let Posted { ctx, value, .. } = form;
    match scanned_path(&value.code) {
        Some(path) => view::done(&path),
        None => scan_form(&ctx, &value.code).show(
            &ctx,
            Some((
                StatusCode::UNPROCESSABLE_ENTITY,
                "That is not a Formica payment code or link.".to_owned(),
            )),
        ),
    }
}

#[derive(Template)]
#[template(path = "wallet/pay_code.html")]
struct PayCode {
    chrome: Chrome,
    code: String,
    spaced: String,
    barcode: String,
    qr: String,
    seconds: u64,
}

/// `GET /wallet/pay-code`: a fresh one-time code (each view replaces the last), as a barcode
/// and a QR code.
pub async fn pay_code(State(state): State<AppState>, Signed(ctx, caller): Signed) -> Response {
    if caller.0.pin_hash.is_none() {
        return view::done("/wallet/pin?next=/wallet/pay-code");
    }
    let code = match formica_api::merchant::issue_payment_code(&state, caller.0.id).await {
        Ok(code) => code,
        Err(error) => return view::api_error(&ctx, &error),
    };
    let spaced = code
        .code
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let page = PayCode {
        chrome: Chrome::new(&ctx, "wallet", "Payment code"),
        barcode: svg::barcode(&code.code),
        qr: svg::qr(&code.code),
        spaced,
        seconds: code.expires_at.saturating_sub(state.now()) / 1_000_000_000,
        code: code.code,
    };
    view::render(&ctx, StatusCode::OK, &page)
}

/// `?kind=&direction=&month=&currency=`.
#[derive(Debug, Default, Deserialize)]
pub struct BillFilter {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    direction: String,
    #[serde(default)]
    month: String,
    #[serde(default)]
    currency: String,
}

#[derive(Template)]
#[template(path = "wallet/bills.html")]
struct Bills {
    chrome: Chrome,
    filter: BillFilter,
    kinds: Vec<(String, String)>,
    months: Vec<String>,
    currencies: Vec<(String, String)>,
    entries: Vec<EntryLine>,
    chart: String,
    spent_total: String,
    truncated: bool,
}

/// How many bill lines the bill page reads (newest first): the chart covers what they span.
const BILLS_READ: u32 = 1_000;

/// `GET /wallet/bills`: the bill list with filters, and spending per month as a chart.
pub async fn bills(
    State(state): State<AppState>,
    Signed(ctx, caller): Signed,
    Query(filter): Query<BillFilter>,
) -> Response {
    let currency = Currency::from_code(&filter.currency)
        .or_else(|| Currency::from_code("CNY"))
        .expect("CNY is a currency");
    let entries = match recent(&state, &caller, currency, BILLS_READ, None).await {
        Ok(entries) => entries,
        Err(response) => return response,
    };
    let offset = state.engine().settings().day_offset_seconds;
    let month_of = |at: u64| view::time(at, offset).get(..7).unwrap_or("").to_owned();
    // Spending: money out that stayed out (a hold given back was not spent).
    let spent = |e: &Entry| e.direction == "out" && e.status != "returned" && e.status != "held";
    let mut by_month: std::collections::BTreeMap<String, u64> = Default::default();
    for entry in entries.iter().filter(|e| spent(e)) {
        *by_month.entry(month_of(entry.at)).or_default() += entry.amount.amount_minor;
    }
    let now_month = month_of(state.now());
    let months = svg::last_months(&now_month, 6);
    let bars: Vec<(String, Money)> = months
        .iter()
        .map(|m| {
            (
                m.clone(),
                Money::new(by_month.get(m).copied().unwrap_or(0), currency),
            )
        })
        .collect();
    let total = Money::new(bars.iter().map(|(_, m)| m.amount_minor).sum(), currency);
    let shown: Vec<EntryLine> = entries
        .iter()
        .filter(|e| filter.kind.is_empty() || e.kind == filter.kind)
        .filter(|e| filter.direction.is_empty() || e.direction == filter.direction)
        .filter(|e| filter.month.is_empty() || month_of(e.at) == filter.month)
        .take(200)
        .map(|e| entry_line(e, offset))
        .collect();
    let kinds = [
        ("", "All kinds"),
        ("top_up", "Top-ups"),
        ("withdrawal", "Withdrawals"),
        ("transfer", "Transfers"),
        ("trade_payment", "Payments and sales"),
        ("refund", "Refunds"),
        ("payout", "Payouts"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let page = Bills {
        chrome: Chrome::new(&ctx, "wallet", "Bills"),
        chart: svg::month_chart(&bars),
        spent_total: view::money(&total),
        truncated: entries.len() == BILLS_READ as usize,
        filter,
        kinds,
        months: months.into_iter().rev().collect(),
        currencies: currency_options(),
        entries: shown,
    };
    view::render(&ctx, StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_returns_only_to_this_site() {
        for local in ["/wallet", "/checkout/12?x=1", "/pay/3"] {
            assert_eq!(safe_next(Some(local)), local);
        }
        for away in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/x\\y",
            "https://evil.example",
            "evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(away)), "/wallet", "{away:?}");
        }
        assert_eq!(safe_next(None), "/wallet");
    }

    #[test]
    fn scanned_codes_lead_to_checkouts_on_this_server() {
        assert_eq!(
            scanned_path("https://pay.example/qr/123?x=1").as_deref(),
            Some("/checkout/123")
        );
        assert_eq!(scanned_path("/pay/77").as_deref(), Some("/pay/77"));
        assert_eq!(scanned_path(" 456 ").as_deref(), Some("/checkout/456"));
        assert_eq!(scanned_path("https://pay.example/wallet"), None);
        assert_eq!(scanned_path("javascript:alert(1)"), None);
    }
}
