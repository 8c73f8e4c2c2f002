//! The plugins built into a server, by name. Plugins of remote workers come and go
//! with their workers and are kept by the task manager (see `crate::remote`).

use std::collections::BTreeMap;
use std::sync::Arc;

use protocol::PluginInfo;

use super::blocking::Blocking;
use super::erased::Actorised;
use super::legacy::{Legacy, LegacyPlugin};
use super::{builtin, ActorPlugin, AnyPlugin, BlockingPlugin};

/// Plugins by name. Built once at start and shared read-only.
#[derive(Clone, Default)]
pub struct PluginRegistry {
    plugins: BTreeMap<String, Arc<dyn AnyPlugin>>,
}

impl PluginRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// `shell` (with what the operator allows it), `synthetic`, `demo_sync` and the
    /// legacy-signature `legacy_backup`.
    pub fn with_builtins(shell: builtin::shell::ShellSettings) -> Self {
        let mut registry = Self::new();
        registry
            .register_blocking(builtin::shell::Shell::new(shell))
            .register_blocking(builtin::synthetic::Synthetic)
            .register_actor(builtin::demo_sync::DemoSync)
            .register_legacy(builtin::legacy_backup::LegacyBackup);
        registry
    }

    /// Adds an actor plugin, replacing one of the same name.
    pub fn register_actor(&mut self, plugin: impl ActorPlugin) -> &mut Self {
        self.insert(Arc::new(Actorised(plugin)))
    }

    /// Adds a blocking plugin, replacing one of the same name.
    pub fn register_blocking(&mut self, plugin: impl BlockingPlugin) -> &mut Self {
        self.register_actor(Blocking(Arc::new(plugin)))
    }

    /// Adds a plugin with the old `execute(params)` signature.
    pub fn register_legacy(&mut self, plugin: impl LegacyPlugin) -> &mut Self {
        self.register_blocking(Legacy(plugin))
    }

    fn insert(&mut self, plugin: Arc<dyn AnyPlugin>) -> &mut Self {
        self.plugins.insert(plugin.name().to_owned(), plugin);
        self
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn AnyPlugin>> {
        self.plugins.get(name).cloned()
    }

    /// The built-in plugins' names.
    pub fn names(&self) -> Vec<String> {
        self.plugins.keys().cloned().collect()
    }

    /// The built-in plugins only admins may run (`shell`).
    pub fn privileged_names(&self) -> Vec<String> {
        self.plugins
            .values()
            .filter(|p| p.privileged())
            .map(|p| p.name().to_owned())
            .collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.plugins.contains_key(name)
    }

    /// What `GET /api/plugins` shows of the built-in plugins, sorted by name.
    pub fn list(&self) -> Vec<PluginInfo> {
        self.plugins.values().map(|p| p.info()).collect()
    }
}
