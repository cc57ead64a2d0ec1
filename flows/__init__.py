"""One plain function per thing causa does, given the runtime its entry point built.

Layers point down: shared ← training ← flows ← entry points (worker/, tasks/).
"""
