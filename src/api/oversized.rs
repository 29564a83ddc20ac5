//! Bodies declared larger than [`super::MAX_BODY`]: read and dropped before the 413.
//!
//! The body limit answers 413 as soon as it sees the `Content-Length`, while the client is
//! still sending. The server then closes the connection with the rest of the body unread,
//! and the kernel answers those bytes with a reset, which can reach the client before it
//! reads the 413: it sees "connection reset" instead of the answer that says why. As Go's
//! net/http does, a body up to [`DRAIN_MAX`] is read to its end first, dropped frame by
//! frame, never held; beyond that, or with no declared length, the answer goes out at once.

use axum::extract::Request;
use axum::http::header::CONTENT_LENGTH;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

/// The largest oversized body still read before it is refused.
const DRAIN_MAX: u64 = 8 << 20;

pub async fn drain_oversized(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > super::MAX_BODY as u64 && length <= DRAIN_MAX => {
            let mut body = request.into_body();
            // hyper ends the body at the declared length, so this loop is bounded by it.
            while let Some(frame) = body.frame().await {
                if frame.is_err() {
                    break;
                }
            }
            // `error::json_errors` words it, as for every 413.
            StatusCode::PAYLOAD_TOO_LARGE.into_response()
        }
        _ => next.run(request).await,
    }
}
