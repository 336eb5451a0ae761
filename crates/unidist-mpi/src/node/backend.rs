//! `impl Backend for Node`: the facade's entry points, each delegating to the concern that
//! owns it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use unidist_core::{
    ActorCall, ActorId, ActorSpec, Backend, ClusterResources, ErasedValue, ObjectId, Payload,
    Result, TaskSpec,
};

use super::state::NAME;
use super::Node;

impl Backend for Node {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> unidist_core::Capabilities {
        // Workers are other MPI processes, and MPI cannot be initialized twice in a process.
        unidist_core::Capabilities::new()
            .separate_processes(true)
            .restartable(false)
            .fault_tolerance(true)
    }

    fn put(&self, value: Arc<dyn ErasedValue>) -> Result<ObjectId> {
        self.check_open()?;
        self.put_value(value)
    }

    fn submit(&self, task: TaskSpec) -> Result<Vec<ObjectId>> {
        self.check_open()?;
        self.submit_task(task)
    }

    fn get(&self, ids: &[ObjectId], timeout: Option<Duration>) -> Result<Vec<Payload>> {
        self.check_open()?;
        self.get_objects(ids, timeout)
    }

    fn wait(
        &self,
        ids: &[ObjectId],
        num_returns: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<bool>> {
        self.check_open()?;
        self.wait_objects(ids, num_returns, timeout)
    }

    fn on_ready(&self, subscription: unidist_core::ready::Subscription) {
        self.subscribe_ready(subscription);
    }

    fn release(&self, id: ObjectId) {
        self.release_ref(id);
    }

    fn ref_serialized(&self, id: ObjectId) {
        self.pin_serialized(id);
    }

    fn ref_deserialized(&self, id: ObjectId) -> Result<()> {
        self.check_open()?;
        self.handle_deserialized(id)
    }

    fn create_actor(&self, spec: ActorSpec) -> Result<ActorId> {
        self.check_open()?;
        self.create_actor_on_worker(spec)
    }

    fn call_actor(&self, call: ActorCall) -> Result<Vec<ObjectId>> {
        self.check_open()?;
        self.send_actor_call(call)
    }

    fn cancel(&self, id: ObjectId) -> Result<()> {
        self.check_open()?;
        self.cancel_object(id)
    }

    fn kill_actor(&self, actor: ActorId) -> Result<()> {
        self.check_open()?;
        self.kill(actor)
    }

    fn release_actor(&self, actor: ActorId) {
        self.release_handle(actor);
    }

    fn actor_deserialized(&self, actor: ActorId) -> Result<()> {
        self.check_open()?;
        self.handle_arrived(actor);
        Ok(())
    }

    fn num_cpus(&self) -> usize {
        (self.size as usize).saturating_sub(1).max(1)
    }

    fn cluster_resources(&self) -> Result<ClusterResources> {
        let mut out = ClusterResources::new();
        for ip in self.ips.iter().skip(1) {
            *out.entry(ip.clone())
                .or_default()
                .entry("CPU".to_string())
                .or_insert(0.0) += 1.0;
        }
        Ok(out)
    }

    fn get_ip(&self) -> String {
        self.ips
            .get(self.rank as usize)
            .cloned()
            .unwrap_or_else(unidist_core::runtime::local_ip)
    }

    fn stats(&self) -> Result<unidist_core::observe::Stats> {
        Ok(self.gathered_stats())
    }

    fn timeline(&self) -> Result<Vec<unidist_core::observe::timeline::ProcessTrace>> {
        Ok(self.gathered_timeline())
    }

    fn set_recording(&self, on: bool) -> Result<()> {
        self.switch_recording(on);
        Ok(())
    }

    fn shutdown(&self) -> Result<()> {
        if self.rank != 0 {
            // Workers end when rank 0 shuts the job down.
            return Ok(());
        }
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.gather_before_shutdown();
        let r = self.shutdown_job();
        // This rank's pooled segments go now; those of ranks that were killed are left only
        // here, in the job's names.
        self.store.clear();
        self.store.sweep_job();
        crate::log::flush();
        r
    }
}
