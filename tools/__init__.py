"""Development tools: the data-dictionary generator, the reference load, and the sandbox set-up
the tests, the benchmarks and these tools share. Never imported by the runtime packages
(``connector``, ``auth_server``, ``pipelines``) and not installed with them."""
