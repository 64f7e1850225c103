"""nodes/routes"""
