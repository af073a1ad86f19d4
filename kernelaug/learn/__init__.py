"""Learning a blur: training F and G, extracting kernel banks, evaluating reconstructions."""
