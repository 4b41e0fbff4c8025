"""LingBot-Depth for ROS 2: complete holey RGB-D sensor depth into metric depth and clouds.

The package is split into a ROS-free core (``core``, ``engines``, ``model``, ``bag``,
``train``) and a thin rclpy layer (``ros``), so the live node, the offline bag tools and
the tests all run the same code.
"""

# colcon installs the generated message module (lingbot_depth_ros.msg) into the install
# space; extending __path__ lets a source checkout that comes first on sys.path still find
# it there, so developers and tests run the sources against the built messages.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

__version__ = "0.1.0"
