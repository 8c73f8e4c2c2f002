//! End-to-end tests of the real server (`Application::build`, as in production) on
//! port 0, against SQLite and PostgreSQL, with real HTTP and WebSocket clients.

mod access;
mod auth;
mod contract;
mod health;
mod helpers;
mod logs;
mod malformed;
mod refusals;
mod settings;
mod tasks;
mod ui;
mod workers;
mod ws;
