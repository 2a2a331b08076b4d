"""``--num-processes N --process-id I --coordinator HOST:PORT``: one run over several processes (JAX)."""

from __future__ import annotations

from kerasnets._validate import message
from kerasnets.cli import UsageError, positive_int, usage_errors
from kerasnets.training.distribution import initialize_processes


def add_arguments(parser):
    group = parser.add_argument_group(
        "several processes (JAX backend; see docs/distributed.md)",
        "Run the same command in every process, changing only --process-id; process 0 writes the "
        "run folder. Use the same --seed everywhere (without one, process 0's is shared).")
    group.add_argument("--num-processes", type=positive_int, metavar="N",
                       help="how many processes train together (one per host, or one per GPU)")
    group.add_argument("--process-id", type=int, metavar="I", help="this process's index, 0 to N-1")
    group.add_argument("--coordinator", metavar="HOST:PORT",
                       help="process 0's address, reachable from every process; process 0 listens on "
                            "JAX_COORDINATOR_BIND_ADDRESS if set (127.0.0.1 for one machine)")
    group.add_argument("--heartbeat-timeout", type=positive_int, metavar="SECONDS",
                       help="when a process dies, the others stop after this many seconds without "
                            "its heartbeat (default: JAX's, 100); rerun every command to resume")


def initialize(args):
    """Joins the processes (before any JAX work); True when it did."""
    given = {"--num-processes": args.num_processes, "--process-id": args.process_id,
             "--coordinator": args.coordinator}
    if all(value is None for value in given.values()):
        return False
    if any(value is None for value in given.values()):
        shown = ", ".join(f"{flag} {value}" for flag, value in given.items() if value is not None)
        raise UsageError(message(", ".join(given), "given together (all three)", None, received=shown))
    with usage_errors():
        initialize_processes(args.num_processes, args.process_id, args.coordinator,
                             cpu_devices=args.cpu_devices, heartbeat_timeout=args.heartbeat_timeout)
    return True
