"""rclpy layer."""
