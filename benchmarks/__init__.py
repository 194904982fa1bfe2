"""Speed and memory benchmarks that print figures and ratios measured side by side."""
