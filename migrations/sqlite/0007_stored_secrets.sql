-- Keys the engines generate and share through the store: the ack-link key when
-- server.ack_secret_file is unset, so a link signed by one engine is accepted by every
-- engine on the store.
CREATE TABLE stored_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
