//! Operations over every parameter at once: listing, the help table, forwarding and validation.

use crate::error::{ConfigError, Result};
use crate::parameter::{Parameter, ValueSource};
use crate::params::{
    Backend, CpuCount, IsMpiSpawnWorkers, MpiBackoff, MpiHeartbeat, MpiHosts, MpiLog,
    MpiPickleThreshold, MpiSharedObjectStore, MpiSharedObjectStoreMemory,
    MpiSharedObjectStoreThreshold, Progress, Timeline,
};

/// A description of one parameter and its current value, from [`parameters`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ParameterInfo {
    /// The parameter's name, e.g. `"CpuCount"`.
    pub name: &'static str,
    /// Its environment variable, e.g. `"UNIDIST_CPUS"`.
    pub env_var: &'static str,
    /// Other variables accepted for it (e.g. `UNIDIST_MPI_SPAWN`).
    pub aliases: &'static [&'static str],
    /// Its type as shown to users, e.g. `"int"`.
    pub type_name: &'static str,
    /// The current value rendered as in the environment, or the error that prevents resolving it
    /// (an invalid environment value).
    pub value: Result<String, ConfigError>,
    /// Where the current value comes from.
    pub source: ValueSource,
    /// The default value, rendered (`"none"` for an absent optional value).
    pub default: String,
    /// What is accepted.
    pub accepted: &'static str,
    /// One line of help.
    pub help: &'static str,
}

/// The type-erased operations on one parameter, so that every function below walks one list.
struct Entry {
    varname: &'static str,
    aliases: &'static [&'static str],
    info: fn() -> ParameterInfo,
    env: fn(&mut Vec<(&'static str, String)>),
    validate: fn() -> Result<()>,
    reset: fn(),
}

const fn entry<P: Parameter>() -> Entry {
    Entry {
        varname: P::VARNAME,
        aliases: P::ALIASES,
        info: info_of::<P>,
        env: env_of::<P>,
        validate: validate_of::<P>,
        reset: P::reset,
    }
}

/// Every parameter, in listing order. Adding a parameter means adding it here.
static ENTRIES: [Entry; 13] = [
    entry::<Backend>(),
    entry::<CpuCount>(),
    entry::<IsMpiSpawnWorkers>(),
    entry::<MpiHosts>(),
    entry::<MpiPickleThreshold>(),
    entry::<MpiBackoff>(),
    entry::<MpiHeartbeat>(),
    entry::<MpiLog>(),
    entry::<Progress>(),
    entry::<Timeline>(),
    entry::<MpiSharedObjectStore>(),
    entry::<MpiSharedObjectStoreMemory>(),
    entry::<MpiSharedObjectStoreThreshold>(),
];

fn info_of<P: Parameter>() -> ParameterInfo {
    let (value, source) = match P::get_with_source() {
        Ok((value, source)) => (Ok(P::render(&value)), source),
        Err(e) => (Err(e), ValueSource::GotFromCfgSource),
    };
    ParameterInfo {
        name: P::NAME,
        env_var: P::VARNAME,
        aliases: P::ALIASES,
        type_name: P::TYPE_NAME,
        value,
        source,
        default: P::render(&P::default_value()),
        accepted: P::EXPECTED,
        help: P::HELP,
    }
}

fn env_of<P: Parameter>(out: &mut Vec<(&'static str, String)>) {
    let Ok((value, source)) = P::get_with_source() else {
        return;
    };
    if source == ValueSource::Default {
        return;
    }
    if let Some(encoded) = P::encode(&value) {
        // Aliases get the same value: a spawned worker also inherits the parent's environment,
        // and a stale alias there would otherwise conflict with the forwarded main variable.
        for var in std::iter::once(P::VARNAME).chain(P::ALIASES.iter().copied()) {
            out.push((var, encoded.clone()));
        }
    }
}

fn validate_of<P: Parameter>() -> Result<()> {
    P::get().map(drop)
}

/// Every parameter with its current value, source, default and help, in a fixed order.
///
/// Resolves (and caches) each value; an invalid environment value shows as `Err` in
/// [`ParameterInfo::value`] instead of failing the whole listing.
pub fn parameters() -> Vec<ParameterInfo> {
    ENTRIES.iter().map(|e| (e.info)()).collect()
}

/// The parameters as an aligned text table, for `--help`-style output.
///
/// Columns: parameter, environment variable, type, value, source, default, help. Invalid
/// environment values show as `<invalid>` in the table, followed by one line per error.
pub fn render_table() -> String {
    let infos = parameters();
    let header = [
        "PARAMETER",
        "ENV VAR",
        "TYPE",
        "VALUE",
        "SOURCE",
        "DEFAULT",
        "HELP",
    ];
    let rows: Vec<[String; 7]> = infos
        .iter()
        .map(|info| {
            let env = match info.aliases {
                [] => info.env_var.to_owned(),
                aliases => format!("{} (alias {})", info.env_var, aliases.join(", ")),
            };
            [
                info.name.to_owned(),
                env,
                info.type_name.to_owned(),
                info.value
                    .clone()
                    .unwrap_or_else(|_| "<invalid>".to_owned()),
                info.source.to_string(),
                info.default.clone(),
                info.help.to_owned(),
            ]
        })
        .collect();

    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: &[&str]| {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                // The last column is not padded, so lines carry no trailing spaces.
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push_row(&header);
    for row in &rows {
        push_row(&row.each_ref().map(String::as_str));
    }
    for info in &infos {
        if let Err(e) = &info.value {
            out.push_str(&format!("error: {e}\n"));
        }
    }
    out
}

/// The variables and encoded values of every parameter not at its default, for forwarding to
/// spawned processes (the MPI backend sets these on the workers it spawns).
///
/// Decoding each value gives back exactly the current value. A parameter with aliases is
/// listed under its main variable and each alias, with the same value. Parameters whose value is
/// absent (e.g. `MpiHosts::put(None)`) are left out, since "unset" already means that; so are
/// parameters with an invalid environment value (call [`validate_all`] first).
pub fn user_set_env() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for e in &ENTRIES {
        (e.env)(&mut out);
    }
    out
}

/// Resolves every parameter and returns the first error, in listing order.
///
/// The facade's `init` calls it, so that a bad `UNIDIST_*` value fails at startup with a
/// message naming the variable, rather than later inside a backend.
///
/// # Errors
/// The first invalid environment value or conflicting alias.
pub fn validate_all() -> Result<()> {
    ENTRIES.iter().try_for_each(|e| (e.validate)())
}

/// Calls `reset` on every parameter: forgets every `put` and cached value.
pub fn reset_all() {
    for e in &ENTRIES {
        (e.reset)();
    }
}

/// Every environment variable read by this crate (main names and aliases), without resolving
/// any value.
pub fn env_vars() -> Vec<&'static str> {
    ENTRIES
        .iter()
        .flat_map(|e| std::iter::once(e.varname).chain(e.aliases.iter().copied()))
        .collect()
}

#[cfg(test)]
mod tests;
