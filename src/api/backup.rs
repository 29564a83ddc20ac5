//! `POST /api/v1/admin/backup`: a consistent copy of the engine's SQLite store, streamed as
//! one database file (`tocsin backup` saves it).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::io::AsyncReadExt;

use super::auth::{need, require_token, Need};
use super::error::ApiError;
use super::AppState;
use crate::store::{Backend, StoreError};

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/backup", post(backup))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// The copy is made beside the store (same file system, same permissions), opened, and
/// unlinked at once: the open descriptor keeps it readable while it streams, and nothing is
/// left behind whatever happens to the request.
async fn backup(
    Need(caller, _): Need<need::Admin>,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let Some(database) = state.store.sqlite_file() else {
        let message = match state.store.backend() {
            Backend::Postgres => StoreError::BackupOfPostgres.to_string(),
            Backend::Sqlite => {
                "this engine's store is in memory: there is nothing to back up".into()
            }
        };
        return Err(ApiError::new(StatusCode::CONFLICT, message));
    };
    let mut name = database.as_os_str().to_owned();
    name.push(format!("-backup-{}", uuid::Uuid::new_v4().simple()));
    let copy = std::path::PathBuf::from(name);
    let made = state.store.backup_to(&copy).await;
    let opened = match made {
        Ok(()) => tokio::fs::File::open(&copy).await,
        Err(e) => {
            let _ = tokio::fs::remove_file(&copy).await;
            tracing::error!(error = %e, "backup failed");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("backup failed: {e}"),
            ));
        }
    };
    let _ = tokio::fs::remove_file(&copy).await;
    let file = opened.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("backup failed: cannot read the copy: {e}"),
        )
    })?;
    let length = file.metadata().await.map(|m| m.len()).ok();
    let detail = format!("{} bytes", length.unwrap_or(0));
    super::audit::record(
        &state,
        &caller,
        &caller.by("(unnamed)"),
        "backup",
        "store",
        &detail,
    )
    .await?;
    let chunks = futures::stream::try_unfold(file, |mut file| async move {
        let mut buffer = vec![0u8; 64 * 1024];
        let read = file.read(&mut buffer).await?;
        if read == 0 {
            return Ok::<_, std::io::Error>(None);
        }
        buffer.truncate(read);
        Ok(Some((Bytes::from(buffer), file)))
    });
    let mut response = (
        [
            (header::CONTENT_TYPE, "application/vnd.sqlite3"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"tocsin-backup.db\"",
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response();
    if let Some(length) = length {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, length.into());
    }
    Ok(response)
}
