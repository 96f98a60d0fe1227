"""`lepton-sim validate`: serve a scenario for real on this machine and compare it with its simulation.

The real half (no simulated clock anywhere):

- `server`  one process per replica pool: a TCP server that queues requests FIFO, batches them by
            the pool's `max_batch` / `max_wait_ms` exactly as `lepton_sim.sim.pools.Pool` does, and
            runs the model's real forward pass (`kernels.forward`, the kernels `kernels measure`
            times) on `count` worker threads, one BLAS thread each.
- `shaper`  one process for every link on the routes: each link direction serialises frames one at
            a time at its bandwidth (FIFO), then holds each for its propagation delay.
- `cores`   where the threads run: each replica worker on a core of its own when one is left over for
            the harness (the generator, the shaper, the servers' connection readers), else shared.
- `loadgen` the scenario's own arrival streams (same kinds, same seeds as the simulator), real
            payload bytes (compressed by the real codec when the service has `payload:`), latency
            from the request's creation (when the generator makes it, a little after its scheduled
            time: that lateness is reported) to its response's arrival back.

`run.validate` starts them, runs the load, then simulates the same scenario twice: with service
times measured in the server processes just before the run (`profile.json`: the forecast a user
would have made), and with each batch size's time as the replicas spent it while serving (which
separates the simulator's queueing, batching and network model from the kernel profile's error).
"""
