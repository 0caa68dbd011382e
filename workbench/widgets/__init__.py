"""Small widgets of our own: quiz questions, profile tables."""
