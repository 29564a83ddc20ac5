//! `tocsin status-link CUSTOMER`: the signed link of a customer's status page.

use std::process::ExitCode;

use super::client::{output, text, Client};
use super::ApiArgs;

pub async fn link(customer: &str, api: &ApiArgs) -> ExitCode {
    let result = async {
        let path = format!("/api/v1/customers/{customer}/status-link");
        let link = Client::new(api)?.get(&path, &[]).await?;
        output(api, &link, |l| format!("{}\n", text(&l["url"])))
    }
    .await;
    match result {
        Ok(out) => {
            crate::output::write(&out);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tocsin: {e}");
            ExitCode::FAILURE
        }
    }
}
