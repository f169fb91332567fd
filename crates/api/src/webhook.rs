//! Webhook endpoints a person registers, and the log of deliveries to each.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use formica_core::Id;
use formica_store::webhook::{self, Delivery, Endpoint};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Caller;
use crate::body::Body;
use crate::error::{ApiError, ErrorBody};
use crate::page::{Page, PageQuery};

/// Endpoints a person may register.
const ENDPOINTS_MAX: usize = 16;

/// An endpoint to register.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// An http or https URL that takes POSTs.
    pub url: String,
}

/// A registered endpoint, with its signing secret (shown once, at creation).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedEndpoint {
    /// Its id.
    pub id: Id,
    /// Where deliveries go.
    pub url: String,
    /// The HMAC-SHA256 key of the `Formica-Signature` header.
    pub secret: String,
    /// When it was registered.
    pub created_at: u64,
}

/// Registers an endpoint: every trade and money event of the caller is POSTed to it, signed
/// (`Formica-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`), until
/// it answers 2xx, with retries backing off exponentially for a day.
#[utoipa::path(post, path = "/v1/webhook-endpoints", tag = "webhooks", request_body = NewEndpoint,
    responses((status = 201, body = CreatedEndpoint), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Body<NewEndpoint>,
) -> Result<(StatusCode, Json<CreatedEndpoint>), ApiError> {
    let url = callback_url(&state, &body.value.url)
        .map_err(|message| ApiError::new("invalid_field", message).field("url"))?;
    let user_id = user.id;
    let existing = state
        .pool()
        .read(move |sql| webhook::endpoints(sql, user_id))
        .await?;
    if existing.len() >= ENDPOINTS_MAX {
        return Err(ApiError::new(
            "invalid_field",
            format!("at most {ENDPOINTS_MAX} endpoints"),
        )
        .field("url"));
    }
    let endpoint = Endpoint {
        id: crate::people::new_id(state.now()),
        user_id,
        url,
        secret: format!("whsec_{}", crate::auth::new_token()),
        created_at: state.now(),
    };
    let row = endpoint.clone();
    state
        .pool()
        .write(move |sql| webhook::create_endpoint(sql, &row))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedEndpoint {
            id: endpoint.id,
            url: endpoint.url,
            secret: endpoint.secret,
            created_at: endpoint.created_at,
        }),
    ))
}

/// A URL the platform may call back (webhooks, the gateway's notify_url): http or https, at
/// most 2 KiB, and a public address unless the server allows private ones.
pub(crate) fn callback_url(state: &AppState, url: &str) -> Result<String, &'static str> {
    let url = url.trim().to_owned();
    let host = (url.len() <= 2048 && (url.starts_with("http://") || url.starts_with("https://")))
        .then(|| url.parse::<axum::http::Uri>().ok())
        .flatten()
        .and_then(|uri| uri.host().map(str::to_owned));
    let Some(host) = host else {
        return Err("an http or https URL");
    };
    if !state.private_webhooks() && private_host(&host) {
        return Err("a public address: loopback, private and link-local addresses are refused");
    }
    Ok(url)
}

/// Whether `host` names this machine or a private network (an address literal, or localhost).
/// Names that resolve to such addresses are not caught here. Hosts that look numeric but are
/// not canonical dotted quads (`127.1`, `2130706433`, `0x7f.1`) are refused too: the
/// resolver would read them as addresses this check never saw.
fn private_host(host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    let private_v4 = |ip: std::net::Ipv4Addr| {
        let [a, b, ..] = ip.octets();
        ip.is_loopback()
            || ip.is_private()
            || ip.is_link_local()
            || ip.is_unspecified()
            || ip.is_broadcast()
            || ip.is_multicast()
            || a == 0
            // Shared address space (carrier NAT; cloud metadata services live here).
            || (a == 100 && (64..128).contains(&b))
            // Benchmarking networks.
            || (a == 198 && (b == 18 || b == 19))
    };
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => private_v4(ip),
        Ok(std::net::IpAddr::V6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_unique_local()
                || ip.is_unicast_link_local()
                || ip.to_ipv4_mapped().is_some_and(private_v4)
                || ip.to_ipv4().is_some_and(private_v4)
        }
        // A name whose last label is a number is an address in disguise.
        Err(_) => host
            .rsplit('.')
            .find(|label| !label.is_empty())
            .is_some_and(|last| {
                last.bytes().all(|b| b.is_ascii_digit())
                    || (last.starts_with("0x") && last[2..].bytes().all(|b| b.is_ascii_hexdigit()))
            }),
    }
}

/// The caller's endpoints.
#[utoipa::path(get, path = "/v1/webhook-endpoints", tag = "webhooks",
    responses((status = 200, body = Vec<Endpoint>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Vec<Endpoint>>, ApiError> {
    let id = user.id;
    Ok(Json(
        state
            .pool()
            .read(move |sql| webhook::endpoints(sql, id))
            .await?,
    ))
}

/// Deliveries to one of the caller's endpoints, newest first: status, attempts, the last
/// answer, and when the next attempt is due.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint"), PageQuery),
    responses((status = 200, body = Page<Delivery>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<Delivery>>, ApiError> {
    let id: Id = id
        .parse()
        .map_err(|_| ApiError::not_found("endpoint_not_found"))?;
    let (before, limit, owner) = (page.before()?, page.limit(), user.id);
    let list = state
        .pool()
        .read(move |sql| {
            if webhook::endpoint(sql, owner, id)?.is_none() {
                return Ok(None);
            }
            webhook::deliveries(sql, id, before, limit).map(Some)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("endpoint_not_found"))?;
    Ok(Json(Page::new(list, limit, |d: &Delivery| d.id)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn private_and_loopback_hosts_are_recognised() {
        for host in [
            "localhost",
            "api.localhost",
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.10",
            "172.16.5.4",
            "169.254.169.254",
            "0.0.0.0",
            "[::1]",
            "[fd00::1]",
            "[fe80::1]",
            "[::ffff:127.0.0.1]",
            // Regressions: the shared space (cloud metadata), mapped link-local, and numbers
            // the resolver reads as addresses.
            "100.100.100.200",
            "0.1.2.3",
            "[::ffff:169.254.169.254]",
            "127.1",
            "2130706433",
            "0x7f.1",
        ] {
            assert!(super::private_host(host), "{host}");
        }
        for host in [
            "example.com",
            "8.8.8.8",
            "[2001:4860:4860::8888]",
            "shop.example.cn",
            "1.example",
        ] {
            assert!(!super::private_host(host), "{host}");
        }
    }
}
