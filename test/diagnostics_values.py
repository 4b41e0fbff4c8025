"""Reading the node's /diagnostics status back (tests and benchmarks; the node only writes it)."""

from lingbot_depth_ros.ros.diagnostics import STATUS_NAME


def parse_values(array, hardware_id: str | None = None) -> dict[str, str]:
    """Key/values of our status (of the node `hardware_id`, if given); empty if none is ours."""
    for status in array.status:
        if status.name == STATUS_NAME and hardware_id in (None, status.hardware_id):
            return {kv.key: kv.value for kv in status.values}
    return {}
