//! A task status as a coloured badge.

use protocol::TaskStatus;
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct StatusBadgeProps {
    pub status: TaskStatus,
}

#[component]
pub fn StatusBadge(props: &StatusBadgeProps) -> Html {
    let name = props.status.as_str();
    html! { <span class={classes!("badge", format!("status-{name}"))} data-testid="task-status">{ name }</span> }
}
