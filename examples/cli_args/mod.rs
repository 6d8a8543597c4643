//! Command-line flags of the benchmark examples (`--name value`).

/// The value after `name` on the command line, or `default` when absent.
/// Panics on a value that does not parse: a benchmark run with a typo
/// should stop, not measure the default.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T
where
    T::Err: std::fmt::Debug,
{
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}
