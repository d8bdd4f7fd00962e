"""surveillance.reports"""
