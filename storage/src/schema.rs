//! The diesel schema, one for both backends: only types both share (Binary, BigInt,
//! SmallInt, Text). It mirrors `migrations/{sqlite,postgres}/`; the storage tests run
//! every query against both, so a drift between the two fails there.

diesel::table! {
    tasks (id) {
        id -> Binary,
        plugin -> Text,
        params -> Text,
        status -> Text,
        created_at -> BigInt,
        started_at -> Nullable<BigInt>,
        finished_at -> Nullable<BigInt>,
        result -> Nullable<Text>,
        error -> Nullable<Text>,
        created_by -> Nullable<Text>,
        node_id -> Nullable<Text>,
        priority -> Integer,
        cancel_requested_at -> Nullable<BigInt>,
        cancel_requested_by -> Nullable<Text>,
    }
}

diesel::table! {
    nodes (id) {
        id -> Text,
        role -> Text,
        started_at -> BigInt,
        heartbeat_at -> BigInt,
        running -> BigInt,
        plugins -> Nullable<Text>,
    }
}

diesel::table! {
    task_logs (task_id, seq) {
        task_id -> Binary,
        seq -> BigInt,
        ts -> BigInt,
        level -> SmallInt,
        source -> Text,
        message -> Text,
        metadata -> Nullable<Text>,
        group_seq -> Nullable<BigInt>,
        group_mark -> Nullable<SmallInt>,
        group_worst -> Nullable<SmallInt>,
    }
}

diesel::table! {
    task_log_counts (task_id, source, level) {
        task_id -> Binary,
        source -> Text,
        level -> SmallInt,
        count -> BigInt,
    }
}

diesel::table! {
    task_log_level_bits (task_id, level, block) {
        task_id -> Binary,
        level -> SmallInt,
        block -> BigInt,
        bits -> Binary,
    }
}

diesel::table! {
    settings (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    api_tokens (name) {
        name -> Text,
        role -> Text,
        token_hash -> Text,
        created_at -> BigInt,
    }
}

diesel::joinable!(task_logs -> tasks (task_id));
diesel::joinable!(task_log_counts -> tasks (task_id));
diesel::allow_tables_to_appear_in_same_query!(tasks, task_logs, task_log_counts, nodes);
