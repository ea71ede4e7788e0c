"""The composition root: builds and wires every part for a mode, starts and stops them in order."""

from quantdesk.node.config import NodeConfig
from quantdesk.node.paper import NodeParts, PaperNode, build

__all__ = ["NodeConfig", "NodeParts", "PaperNode", "build"]
