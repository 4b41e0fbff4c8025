"""LingBot-Depth for ROS 2: complete holey RGB-D sensor depth into metric depth and clouds. A
ROS-free core (``core``, ``engines``, ``model``, ``bag``, ``train``) under a thin rclpy layer
(``ros``)."""

# colcon installs the generated message module (lingbot_depth_ros.msg) into the install
# space; extending __path__ lets a source checkout that comes first on sys.path still find
# it there, so developers and tests run the sources against the built messages.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

__version__ = "0.1.0"
