"""The composition root: builds and wires every part for a mode, starts and stops them in order."""

from quantdesk.node.config import NodeConfig
from quantdesk.node.paper import NodeFailed, NodeParts, PaperNode, build

__all__ = ["NodeConfig", "NodeFailed", "NodeParts", "PaperNode", "build"]
