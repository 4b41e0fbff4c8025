"""How the bag tools read a node's topic parameters against a bag's topics: the presets name
topics relative to the camera driver's namespace, which a bag does not record."""

import pytest

from lingbot_depth_ros.bag.topics import matching_topics

BAG = ["/camera/camera/color/image_raw", "/camera/camera/color/camera_info",
       "/arm/camera/color/image_raw", "/color/image_raw", "/zed/zed_node/depth/depth_registered"]


@pytest.mark.parametrize("name, expected", [
    ("/camera/camera/color/image_raw", ["/camera/camera/color/image_raw"]),  # absolute: itself
    ("/camera/color/image_raw", []),                                        # absolute, absent
    ("color/image_raw", ["/color/image_raw"]),                # the root namespace comes first
    ("camera/color/image_raw", ["/arm/camera/color/image_raw", "/camera/camera/color/image_raw"]),
    ("zed_node/depth/depth_registered", ["/zed/zed_node/depth/depth_registered"]),
    ("depth/depth_registered", ["/zed/zed_node/depth/depth_registered"]),
    ("color/camera_inf", []),                                  # whole name segments only
])
def test_matching_topics(name, expected):
    assert matching_topics(BAG, name) == expected
