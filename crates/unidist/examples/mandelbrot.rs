//! A picture: the Mandelbrot set rendered one row per task, written as a PNG with the `image`
//! crate. Each task returns its row's RGB bytes; `main` gathers them in order and saves the
//! image, then prints a checksum of the pixel data (identical on every backend).
//!
//! The path is the first argument, else `target/mandelbrot.png`:
//!
//! ```text
//! UNIDIST_BACKEND=pyseq cargo run -p unidist --example mandelbrot
//! UNIDIST_BACKEND=pymp  cargo run -p unidist --example mandelbrot -- docs/mandelbrot.png
//! MPICC=mpicc.openmpi cargo build -p unidist --features mpi --example mandelbrot
//! UNIDIST_BACKEND=mpi UNIDIST_IS_MPI_SPAWN_WORKERS=false mpiexec -n 3 target/debug/examples/mandelbrot
//! ```

use unidist::ObjectRef;

const WIDTH: u32 = 600;
const HEIGHT: u32 = 400;
const MAX_ITER: u32 = 200;

/// The colour of a point that escaped after `n` of `MAX_ITER` iterations (black inside).
fn colour(n: u32) -> [u8; 3] {
    if n >= MAX_ITER {
        return [0, 0, 0];
    }
    // The square root spreads the few iterations of most outside points over the ramp.
    let t = (f64::from(n) / f64::from(MAX_ITER)).sqrt();
    // A smooth blue-to-gold ramp from three polynomials in t.
    let r = 9.0 * (1.0 - t) * t * t * t;
    let g = 15.0 * (1.0 - t) * (1.0 - t) * t * t;
    let b = 8.5 * (1.0 - t) * (1.0 - t) * (1.0 - t) * t;
    [r, g, b].map(|c| (c.clamp(0.0, 1.0) * 255.0) as u8)
}

/// The RGB bytes of row `y`.
#[unidist::remote]
fn row(y: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(WIDTH as usize * 3);
    let ci = -1.2 + 2.4 * f64::from(y) / f64::from(HEIGHT);
    for x in 0..WIDTH {
        let cr = -2.3 + 3.6 * f64::from(x) / f64::from(WIDTH);
        let (mut zr, mut zi, mut n) = (0.0f64, 0.0f64, 0);
        while n < MAX_ITER && zr * zr + zi * zi <= 4.0 {
            (zr, zi) = (zr * zr - zi * zi + cr, 2.0 * zr * zi + ci);
            n += 1;
        }
        out.extend_from_slice(&colour(n));
    }
    out
}

/// FNV-1a over the pixel bytes: a short fingerprint to compare runs by.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    unidist::init()?;
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/mandelbrot.png".to_string());
    let rows: Vec<ObjectRef<Vec<u8>>> = (0..HEIGHT).map(row::remote).collect();
    let pixels: Vec<u8> = unidist::get_all(&rows)?.concat();
    let sum = checksum(&pixels);
    let image = image::RgbImage::from_raw(WIDTH, HEIGHT, pixels)
        .ok_or("the rows do not add up to the image size")?;
    if let Some(dir) = std::path::Path::new(&path).parent() {
        std::fs::create_dir_all(dir)?;
    }
    image.save(&path)?;
    println!("mandelbrot: {WIDTH}x{HEIGHT}, {HEIGHT} row tasks, checksum {sum:016x}, wrote {path}");
    unidist::shutdown()?;
    Ok(())
}
