//! The plugins a server offers, by name.

use std::collections::BTreeMap;
use std::sync::Arc;

use protocol::PluginInfo;

use super::builtin;
use super::legacy::Legacy;
use super::Plugin;

/// Plugins by name. Built once at start and shared read-only.
#[derive(Clone, Default)]
pub struct PluginRegistry {
    plugins: BTreeMap<String, Arc<dyn Plugin>>,
}

impl PluginRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// `shell` (with what the operator allows it), `synthetic`, `demo_sync` and the
    /// legacy-signature `legacy_backup`.
    pub fn with_builtins(shell: builtin::shell::ShellSettings) -> Self {
        let mut registry = Self::new();
        registry.register(builtin::shell::Shell::new(shell));
        registry.register(builtin::synthetic::Synthetic);
        registry.register(builtin::demo_sync::DemoSync);
        registry.register(Legacy(builtin::legacy_backup::LegacyBackup));
        registry
    }

    /// Adds a plugin, replacing one of the same name.
    pub fn register(&mut self, plugin: impl Plugin) -> &mut Self {
        self.plugins
            .insert(plugin.name().to_owned(), Arc::new(plugin));
        self
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Plugin>> {
        self.plugins.get(name).cloned()
    }

    /// What `GET /api/plugins` shows, sorted by name.
    pub fn list(&self) -> Vec<PluginInfo> {
        self.plugins
            .values()
            .map(|p| PluginInfo {
                name: p.name().to_owned(),
                description: p.description().to_owned(),
                privileged: p.privileged(),
                legacy: p.is_legacy(),
                example_params: p.example_params(),
            })
            .collect()
    }
}
