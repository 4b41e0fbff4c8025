"""Synthetic RGB-D with a depth sensor's own failures: random scenes (``scene``), rendered with
Mitsuba 3 (``render``) through models of real stereo depth cameras (``cameras``), matched with
semi-global matching and the drivers' post-processing (``stereo``), noised as the datasheets
give it (``noise``) and written as capture folders or a rosbag2 (``dataset``, ``bag_out``).
ROS-free; Mitsuba imports only where a frame is rendered."""
