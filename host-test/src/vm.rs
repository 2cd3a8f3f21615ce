//! One VM: a wasmtime store and instance, and calls into its exports.
//!
//! Every export call sets the effective context, refuels, and turns a trap
//! into [`HostError::Trap`]; after a trap the VM is dead and every later call
//! reports [`HostError::VmFailed`], as a crashed VM in Envoy serves nothing.

use std::collections::HashMap;

use wasmtime::{Func, Instance, Store, Trap, Val, ValType};

use crate::error::HostError;
use crate::log::LogSource;
use crate::state::HostState;

/// The exports the host calls, with their parameter count and whether they
/// return an `i32`. Exports a module lacks are simply not called.
const EXPORTS: &[(&str, usize, bool)] = &[
    ("_initialize", 0, false),
    ("_start", 0, false),
    ("proxy_on_memory_allocate", 1, true),
    ("proxy_on_context_create", 2, false),
    ("proxy_on_vm_start", 2, true),
    ("proxy_on_configure", 2, true),
    ("proxy_on_tick", 1, false),
    ("proxy_on_queue_ready", 2, false),
    ("proxy_on_request_headers", 3, true),
    ("proxy_on_request_body", 3, true),
    ("proxy_on_request_trailers", 2, true),
    ("proxy_on_response_headers", 3, true),
    ("proxy_on_response_body", 3, true),
    ("proxy_on_response_trailers", 2, true),
    ("proxy_on_http_call_response", 5, false),
    ("proxy_on_log", 1, false),
    ("proxy_on_done", 1, true),
    ("proxy_on_delete", 1, false),
];

/// Fuel given to each top-level guest call when fuel is not limited.
const UNLIMITED_FUEL: u64 = u64::MAX / 2;

pub(crate) struct Vm {
    pub store: Store<HostState>,
    instance: Instance,
    /// The known exports the module has, with whether each returns a
    /// value: looked up and type-checked once, not on every call.
    exports: HashMap<&'static str, (Func, bool)>,
    failed: Option<String>,
    fuel_per_call: Option<u64>,
}

impl Vm {
    /// Wraps a fresh instance after checking its exports' signatures.
    pub fn new(
        mut store: Store<HostState>,
        instance: Instance,
        fuel_per_call: Option<u64>,
    ) -> Result<Vm, HostError> {
        let mut exports = HashMap::new();
        for &(name, params, returns) in EXPORTS {
            let Some(func) = instance.get_func(&mut store, name) else {
                continue;
            };
            exports.insert(name, (func, returns));
            let ty = func.ty(&store);
            let params_ok =
                ty.params().len() == params && ty.params().all(|p| matches!(p, ValType::I32));
            let results: Vec<ValType> = ty.results().collect();
            let results_ok = match returns {
                true => results.len() == 1 && matches!(results[0], ValType::I32),
                false => results.is_empty(),
            };
            if !params_ok || !results_ok {
                return Err(HostError::ExportSignature {
                    name,
                    expected: format!(
                        "{params} i32 parameter(s){}",
                        if returns {
                            " and an i32 result"
                        } else {
                            " and no result"
                        }
                    ),
                });
            }
        }
        if instance
            .get_func(&mut store, "proxy_abi_version_0_2_1")
            .is_none()
            && instance
                .get_func(&mut store, "proxy_abi_version_0_2_0")
                .is_none()
        {
            return Err(HostError::AbiVersion);
        }
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or(HostError::MissingExport("memory"))?;
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "proxy_on_memory_allocate")
            .map_err(|_| HostError::MissingExport("proxy_on_memory_allocate"))?;
        store.data_mut().memory = Some(memory);
        store.data_mut().alloc = Some(alloc);
        Ok(Vm {
            store,
            instance,
            exports,
            failed: None,
            fuel_per_call,
        })
    }

    /// Shared view of the host state.
    pub fn state(&self) -> &HostState {
        self.store.data()
    }

    /// Mutable view of the host state.
    pub fn state_mut(&mut self) -> &mut HostState {
        self.store.data_mut()
    }

    /// Why the VM died, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Whether the module exports `name`.
    pub fn has_export(&mut self, name: &str) -> bool {
        self.instance.get_func(&mut self.store, name).is_some()
    }

    /// Calls export `name` with `ctx` as the effective context. Returns the
    /// `i32` result, or `None` when the export is absent or returns nothing.
    pub fn call(
        &mut self,
        ctx: u32,
        name: &'static str,
        args: &[u32],
    ) -> Result<Option<i32>, HostError> {
        if let Some(reason) = &self.failed {
            return Err(HostError::VmFailed(reason.clone()));
        }
        // Every export the host calls is in `EXPORTS`, checked at start.
        let Some(&(func, returns)) = self.exports.get(name) else {
            return Ok(None);
        };
        self.store.data_mut().effective = ctx;
        let fuel = self.fuel_per_call.unwrap_or(UNLIMITED_FUEL);
        if crate::host::fuel_metering() {
            if let Err(e) = self.store.set_fuel(fuel) {
                return Err(self.die(name, format!("cannot set fuel: {e:?}"), 0));
            }
        }
        let log_mark = self.store.data().logs.entries.len();
        match invoke(&mut self.store, func, returns, args) {
            Ok(result) => Ok(result),
            Err(e) => {
                let message = describe(&e);
                Err(self.die(name, message, log_mark))
            }
        }
    }

    /// Marks the VM dead and builds the error, appending what the guest
    /// printed on stderr during the failed call (a Rust panic message).
    fn die(&mut self, name: &'static str, mut message: String, log_mark: usize) -> HostError {
        let ctx = self.store.data().effective;
        let logs = &mut self.store.data_mut().logs;
        logs.flush(ctx);
        let stderr: Vec<&str> = logs.entries[log_mark.min(logs.entries.len())..]
            .iter()
            .filter(|e| e.source == LogSource::Stderr)
            .map(|e| e.message.as_str())
            .collect();
        if !stderr.is_empty() {
            message.push_str("; guest stderr: ");
            message.push_str(&stderr.join(" | "));
        }
        self.failed = Some(format!("{name}: {message}"));
        HostError::Trap {
            callback: name,
            message,
        }
    }
}

fn invoke(
    store: &mut Store<HostState>,
    func: Func,
    returns: bool,
    args: &[u32],
) -> wasmtime::Result<Option<i32>> {
    let params: Vec<Val> = args.iter().map(|&a| Val::I32(a as i32)).collect();
    let mut result = [Val::I32(0)];
    let results = if returns { &mut result[..] } else { &mut [] };
    func.call(&mut *store, &params, results)?;
    Ok(results.first().and_then(Val::i32))
}

fn describe(e: &wasmtime::Error) -> String {
    if let Some(Trap::OutOfFuel) = e.downcast_ref::<Trap>() {
        return "ran out of fuel (the per-call instruction budget); an infinite loop?".to_string();
    }
    e.chain()
        .map(|cause| cause.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}
