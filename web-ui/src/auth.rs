//! Who is logged in. The token lives in `sessionStorage` (it is gone when the browser
//! session ends) and in an [`AuthContext`] every page reads.

use std::rc::Rc;

use gloo_storage::{SessionStorage, Storage};
use protocol::Role;
use yew::prelude::*;

use crate::api::Api;

const TOKEN_KEY: &str = "tasklens.token";
const NAME_KEY: &str = "tasklens.name";
const ROLE_KEY: &str = "tasklens.role";

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Auth {
    pub token: Option<String>,
    pub name: String,
    pub role: Option<Role>,
}

impl Auth {
    pub fn load() -> Self {
        Auth {
            token: SessionStorage::get(TOKEN_KEY).ok(),
            name: SessionStorage::get(NAME_KEY).unwrap_or_default(),
            role: SessionStorage::get::<String>(ROLE_KEY)
                .ok()
                .and_then(|r| r.parse().ok()),
        }
    }

    pub fn api(&self) -> Option<Api> {
        self.token.as_deref().map(Api::new)
    }

    pub fn is_admin(&self) -> bool {
        self.role == Some(Role::Admin)
    }
}

pub enum AuthAction {
    LoggedIn {
        token: String,
        name: String,
        role: Role,
    },
    LoggedOut,
}

impl Reducible for Auth {
    type Action = AuthAction;

    fn reduce(self: Rc<Self>, action: AuthAction) -> Rc<Self> {
        match action {
            AuthAction::LoggedIn { token, name, role } => {
                let _ = SessionStorage::set(TOKEN_KEY, &token);
                let _ = SessionStorage::set(NAME_KEY, &name);
                let _ = SessionStorage::set(ROLE_KEY, role.as_str());
                Rc::new(Auth {
                    token: Some(token),
                    name,
                    role: Some(role),
                })
            }
            AuthAction::LoggedOut => {
                SessionStorage::delete(TOKEN_KEY);
                SessionStorage::delete(NAME_KEY);
                SessionStorage::delete(ROLE_KEY);
                Rc::new(Auth::default())
            }
        }
    }
}

pub type AuthContext = UseReducerHandle<Auth>;

#[derive(Properties, PartialEq)]
pub struct AuthProviderProps {
    pub children: Html,
}

#[component]
pub fn AuthProvider(props: &AuthProviderProps) -> Html {
    let auth = use_reducer(Auth::load);
    html! {
        <ContextProvider<AuthContext> context={auth}>
            { props.children.clone() }
        </ContextProvider<AuthContext>>
    }
}
