//! Unidist inside an async program: a Tokio pipeline reads its input file asynchronously,
//! submits one task per batch of lines as soon as the batch is read, and awaits the refs (which
//! never blocks the runtime's thread) while a second Tokio task writes finished results to an
//! output file. Reading, computing and writing overlap.
//!
//! ```text
//! UNIDIST_BACKEND=pyseq cargo run -p unidist --example pipeline_async
//! UNIDIST_BACKEND=pymp  cargo run -p unidist --example pipeline_async
//! MPICC=mpicc.openmpi cargo build -p unidist --features mpi --example pipeline_async
//! UNIDIST_BACKEND=mpi UNIDIST_IS_MPI_SPAWN_WORKERS=false mpiexec -n 3 target/debug/examples/pipeline_async
//! ```

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

const LINES: u64 = 400;
const BATCH: usize = 25;

/// The work on one batch: the sum of the numbers on its lines, after a short pause that
/// stands for real computation.
#[unidist::remote]
fn batch_sum(index: u64, lines: Vec<String>) -> (u64, u64) {
    std::thread::sleep(Duration::from_millis(20));
    let sum = lines
        .iter()
        .map(|l| l.trim().parse::<u64>().expect("a number per line"))
        .sum();
    (index, sum)
}

async fn pipeline(input: PathBuf, output: PathBuf) -> unidist::Result<(u64, usize)> {
    // Stage 3: a writer task that appends results as they arrive.
    let (tx, mut rx) = mpsc::channel::<(u64, u64)>(8);
    let writer = tokio::spawn(async move {
        let mut file = tokio::fs::File::create(&output).await?;
        let mut written = 0;
        while let Some((index, sum)) = rx.recv().await {
            file.write_all(format!("batch {index}: {sum}\n").as_bytes())
                .await?;
            written += 1;
        }
        file.flush().await?;
        Ok::<usize, std::io::Error>(written)
    });
    // Stage 1 and 2: read batches and submit them; await each ref on its own task.
    let mut lines =
        BufReader::new(tokio::fs::File::open(&input).await.expect("input file")).lines();
    let mut awaiting = tokio::task::JoinSet::new();
    let mut batch = Vec::new();
    let mut index = 0;
    loop {
        let line = lines.next_line().await.expect("reading the input");
        let done = line.is_none();
        batch.extend(line);
        if batch.len() == BATCH || (done && !batch.is_empty()) {
            let r = batch_sum::remote(index, std::mem::take(&mut batch));
            let tx = tx.clone();
            awaiting.spawn(async move {
                let (i, sum) = r.await?;
                let _ = tx.send((i, sum)).await;
                Ok::<u64, unidist::Error>(sum)
            });
            index += 1;
        }
        if done {
            break;
        }
    }
    drop(tx);
    let mut total = 0;
    while let Some(joined) = awaiting.join_next().await {
        total += joined.expect("an awaiting task panicked")?;
    }
    let written = writer
        .await
        .expect("the writer panicked")
        .expect("writing the output");
    Ok((total, written))
}

fn main() -> unidist::Result<()> {
    // Start unidist before the async runtime: on MPI worker ranks `init` serves and exits.
    unidist::init()?;
    let dir = std::env::temp_dir().join(format!("unidist-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let (input, output) = (dir.join("input.txt"), dir.join("output.txt"));
    let numbers: Vec<String> = (1..=LINES).map(|n| n.to_string()).collect();
    std::fs::write(&input, numbers.join("\n")).expect("writing the input");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a Tokio runtime");
    let (total, written) = runtime.block_on(pipeline(input, output.clone()))?;
    let lines = std::fs::read_to_string(&output)
        .expect("the output file")
        .lines()
        .count();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(total, LINES * (LINES + 1) / 2);
    assert_eq!(lines, written);
    println!(
        "pipeline_async: {LINES} lines in {written} batches, total {total}, {lines} output lines"
    );
    unidist::shutdown()
}
