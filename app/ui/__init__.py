"""The Qt front end. The only package of EndoSpine that imports PyQt6."""
