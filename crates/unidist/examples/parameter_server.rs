//! An actor holding shared state: a parameter server keeps the weights of a linear model, and
//! four worker tasks each pull the weights, compute a gradient on their own shard of the data
//! and push it back, without coordinating with each other. The data are generated from known
//! weights with no noise, so training converges to them.
//!
//! ```text
//! UNIDIST_BACKEND=pyseq cargo run -p unidist --example parameter_server
//! UNIDIST_BACKEND=pymp  cargo run -p unidist --example parameter_server
//! MPICC=mpicc.openmpi cargo build -p unidist --features mpi --example parameter_server
//! UNIDIST_BACKEND=mpi UNIDIST_IS_MPI_SPAWN_WORKERS=false mpiexec -n 3 target/debug/examples/parameter_server
//! ```

use unidist::{ActorHandle, ObjectRef};

/// The weights the data are generated from.
const TRUE_WEIGHTS: [f64; 3] = [1.0, -2.0, 0.5];
const WORKERS: u64 = 4;
const STEPS: u32 = 60;
const LEARNING_RATE: f64 = 0.2;

/// The model's weights and how many updates they have had.
pub struct ParameterServer {
    weights: Vec<f64>,
    updates: u64,
}

#[unidist::actor]
impl ParameterServer {
    /// Starts from zero weights.
    pub fn new(dim: usize) -> Self {
        ParameterServer {
            weights: vec![0.0; dim],
            updates: 0,
        }
    }

    /// The current weights.
    pub fn pull(&self) -> Vec<f64> {
        self.weights.clone()
    }

    /// One gradient step; returns the number of updates so far.
    pub fn push(&mut self, gradient: Vec<f64>) -> u64 {
        for (w, g) in self.weights.iter_mut().zip(gradient) {
            *w -= LEARNING_RATE * g;
        }
        self.updates += 1;
        self.updates
    }
}

/// The points of worker `shard`: deterministic inputs in [-1, 1], labels from the true weights.
fn shard_data(shard: u64) -> Vec<([f64; 3], f64)> {
    (0..32u64)
        .map(|i| {
            let k = (shard * 32 + i) as f64;
            let x = [
                (k * 0.37).sin(),
                (k * 0.91).cos(),
                ((k * 1.3).sin() * 2.0).tanh(),
            ];
            let y = x.iter().zip(TRUE_WEIGHTS).map(|(a, w)| a * w).sum();
            (x, y)
        })
        .collect()
}

/// A worker: `STEPS` rounds of pull, gradient of the mean squared error on its shard, push.
#[unidist::remote]
fn worker(server: ActorHandle<ParameterServer>, shard: u64) -> u64 {
    let data = shard_data(shard);
    let mut last = 0;
    for _ in 0..STEPS {
        let w = unidist::get(&server.pull()).expect("pulling the weights");
        let mut grad = vec![0.0; w.len()];
        for (x, y) in &data {
            let err: f64 = x.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() - y;
            for (g, a) in grad.iter_mut().zip(x) {
                *g += 2.0 * err * a / data.len() as f64;
            }
        }
        last = unidist::get(&server.push(grad)).expect("pushing a gradient");
    }
    last
}

fn main() -> unidist::Result<()> {
    unidist::init()?;
    let server = ParameterServer::remote(TRUE_WEIGHTS.len());
    let workers: Vec<ObjectRef<u64>> = (0..WORKERS)
        .map(|shard| worker::remote(server.clone(), shard))
        .collect();
    let last_seen = unidist::get_all(&workers)?;
    let updates = last_seen.into_iter().max().unwrap_or(0);
    let weights = unidist::get(&server.pull())?;
    for (w, t) in weights.iter().zip(TRUE_WEIGHTS) {
        assert!(
            (w - t).abs() < 1e-3,
            "weights {weights:?} did not converge to {TRUE_WEIGHTS:?}"
        );
    }
    let shown: Vec<String> = weights.iter().map(|w| format!("{w:.3}")).collect();
    println!(
        "parameter_server: {WORKERS} workers, {updates} updates, weights [{}]",
        shown.join(", ")
    );
    unidist::shutdown()
}
