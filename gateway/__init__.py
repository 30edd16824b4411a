"""The HTTP/JSON edge: the national hospital interface and REST for persons and the public."""
